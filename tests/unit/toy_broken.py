"""The toy framework with a runtime that breaks the contract (threads is not a number): the worker's own
code cannot build its typed result, which is a bug in edgeopt, not a failed candidate."""

from tests.unit.toy import ToyAdapter, ToyRuntime, ToySession


class BrokenSession(ToySession):
    def __init__(self, artifact, threads):
        super().__init__(artifact, threads)
        self.threads = "many"


class BrokenRuntime(ToyRuntime):
    def load(self, artifact, threads):
        return BrokenSession(artifact, threads)


class BrokenAdapter(ToyAdapter):
    runtime = BrokenRuntime()


ADAPTER = BrokenAdapter()
