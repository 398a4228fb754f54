from edgeopt.cli import run

run()
