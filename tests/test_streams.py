"""Lines that other threads cannot split (``harness.streams``)."""

from __future__ import annotations

import io
import sys
import threading

from harness.streams import WholeLines, log_line, stdout_to_stderr


class Recorder(io.StringIO):
    """A text stream that also lists each write call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def write(self, text: str) -> int:
        self.calls.append(text)
        return super().write(text)


def test_a_line_another_thread_writes_meanwhile_does_not_land_inside_ours():
    target = Recorder()
    lines = WholeLines(target)
    begun, theirs_written = threading.Event(), threading.Event()

    def ours() -> None:
        lines.write("toy/cell: failed: ")
        lines.write("its worker died")
        begun.set()
        theirs_written.wait(5)
        lines.write("\n")

    def theirs() -> None:
        begun.wait(5)
        print("(raylet) A worker died ... RPC error: Socket closed", file=lines)  # two writes: text, then newline
        theirs_written.set()

    threads = [threading.Thread(target=ours), threading.Thread(target=theirs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert target.getvalue().splitlines() == [
        "(raylet) A worker died ... RPC error: Socket closed",
        "toy/cell: failed: its worker died",
    ]
    assert target.calls == [
        "(raylet) A worker died ... RPC error: Socket closed\n",
        "toy/cell: failed: its worker died\n",
    ]


def test_several_lines_in_one_write_go_out_together_and_close_ends_what_is_held():
    target = Recorder()
    lines = WholeLines(target)
    lines.write("one\ntwo\nthr")
    assert target.calls == ["one\ntwo\n"]
    lines.write("ee")
    lines.flush()
    assert target.calls == ["one\ntwo\n"]
    lines.close()
    assert target.getvalue() == "one\ntwo\nthree\n"


def test_log_line_writes_the_message_and_its_newline_in_one_call(monkeypatch):
    target = Recorder()
    monkeypatch.setattr(sys, "stderr", target)
    log_line("toy/cell: failed: its worker died")
    assert [call for call in target.calls if call] == ["toy/cell: failed: its worker died\n"]


def test_stdout_goes_to_stderr_meanwhile_and_comes_back(capfd):
    print("before")
    with stdout_to_stderr():
        print("meanwhile", end="")
        print(" and its end")
        sys.stdout.flush()
    print("after")
    out, err = capfd.readouterr()
    assert out == "before\nafter\n"
    assert err == "meanwhile and its end\n"
