import io

from edgeopt.progress import NoProgress, PlainProgress, RichProgress, make_progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_the_live_table_and_a_pipe_gets_plain_lines():
    terminal = Terminal()
    live = make_progress(terminal, quiet=False)
    assert isinstance(live, RichProgress)
    live.message("building m")
    live.step("int8-dynamic", "done", "p50 1.0 ms")
    live.close()
    assert "int8-dynamic" in terminal.getvalue() and "done" in terminal.getvalue()

    pipe = io.StringIO()
    plain = make_progress(pipe, quiet=False)
    assert isinstance(plain, PlainProgress)
    plain.step("int8-dynamic", "failed", "boom")
    assert pipe.getvalue() == "  int8-dynamic: failed — boom\n"
    assert isinstance(make_progress(Terminal(), quiet=True), NoProgress)
