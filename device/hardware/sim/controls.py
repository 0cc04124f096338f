"""What a person can do to a simulated station, and the one table that names each of those actions.

``SimControls`` holds the simulated parts (ballot box, scanner, camera, link)
and does to them what a person would do to real hardware: scan a document,
show one to the camera, drop a ballot, open the lid, cut the link. The
appliance then records the consequences as usual. It exists only in
simulation mode.

``ACTIONS`` names every simulator action once, with its parameters and a
sentence saying what it plays. The control socket (``pollbox sim ...``), the
developer panel (``/dev``), ``pollbox sim --help`` and the tests all read it,
so an action added here is available everywhere at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from device.hardware.interfaces import ScanRead

T = TypeVar("T")


class ScanSink(Protocol):
    """The part of the appliance a simulated camera delivers to."""

    def post_scan(self, read: ScanRead) -> None: ...


class SimControls:
    """What a person can do to a simulated station: scan, type, show a document to the camera,
    drop ballots, open the lid, cut the link. Exists only in simulation mode."""

    def __init__(self, *, box: Any, scanner: Any, camera: Any = None, link: Any = None) -> None:
        self.box, self.scanner, self.camera, self.link = box, scanner, camera, link

    def attach(self, app: ScanSink) -> None:
        """Connect the simulated camera to the desk (the typed scanner is the appliance's own source)."""
        if self.camera is not None:
            self.camera.start(app.post_scan, lambda state: None)

    def feed(self, text: str) -> None:
        """A handheld scanner reads ``text`` from a document."""
        self.scanner.feed(text)

    def feed_image(self, path: Path) -> list[str]:
        """Show an image to the simulated camera; returns the symbologies it decoded."""
        if self.camera is None:
            raise RuntimeError("this simulated station has no camera")
        if not path.is_file():
            raise RuntimeError(f"there is no image file at {path}")
        return [read.symbology for read in self.camera.feed_image(path)]

    def type_keys(self, text: str, layout: str = "us") -> None:
        """A handheld scanner in keyboard mode types ``text``: key events decoded through ``layout``."""
        from device.hardware.scanners.keymaps import keymap
        from device.hardware.scanners.keys import KeyDecoder, key_events
        decoder, typed = KeyDecoder(keymap(layout)), ""
        for code, value in key_events(text, keymap(layout)):
            typed += decoder.feed(code, value)
        self.scanner.feed(typed.rstrip("\n"), symbology=f"keyboard-{layout}")

    def cut_link(self) -> None:
        self._link().cut_link()

    def restore_link(self) -> None:
        self._link().restore_link()

    def _link(self) -> Any:
        if self.link is None:
            raise RuntimeError("this station's uplink is not simulated (uplink.transport = \"sim\" to cut it)")
        return self.link


# The table of actions ------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One parameter of an action: its name in a control request and what it is, for a person.

    ``default`` None means the parameter is required. ``kind`` is ``text``, ``int``
    or ``path`` (a file the appliance opens: the command line makes it absolute);
    ``rest`` takes every remaining word of the command line (a reason).
    """

    name: str
    what: str
    default: str | None = None
    kind: str = "text"
    rest: bool = False

    @property
    def usage(self) -> str:
        word = self.name.upper() + ("..." if self.rest else "")
        return word if self.default is None else f"[{word}]"


@dataclass(frozen=True)
class Action(Generic[T]):
    """A named thing a person does, with its parameters; ``run(target, values)`` does it.

    ``reads`` marks an action that hands the desk a document: whoever runs it
    reports the desk's decision for that read. ``done`` is the sentence to print
    when the action has nothing else to show.
    """

    name: str
    does: str
    run: Callable[[T, Mapping[str, Any]], Any]
    params: tuple[Param, ...] = ()
    reads: bool = False
    done: str = "done"

    @property
    def usage(self) -> str:
        return " ".join([self.name] + [p.usage for p in self.params])

    def values(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters from a request, defaults filled in; ValueError names a missing or bad one."""
        out: dict[str, Any] = {}
        for p in self.params:
            value = given.get(p.name, p.default)
            if value is None or (value == "" and p.default is None):
                raise ValueError(f"'{self.name}' needs {p.what} ({self.usage})")
            out[p.name] = _typed(self.name, p, value)
        return out


def _typed(action: str, p: Param, value: Any) -> Any:
    if p.kind == "int":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"'{action}' needs {p.what} as a whole number, not {value!r}") from None
    if p.kind == "path":
        return Path(str(value))
    return str(value)


def table(actions: tuple[Action[T], ...]) -> dict[str, Action[T]]:
    """Actions by name (names are unique)."""
    named = {a.name: a for a in actions}
    assert len(named) == len(actions), "two actions share a name"
    return named


def describe(actions: tuple[Action[Any], ...]) -> str:
    """One line per action, for ``--help``."""
    width = max(len(a.usage) for a in actions)
    return "\n".join(f"  {a.usage:<{width}}  {a.does}" for a in actions)


TEXT = Param("text", "the text the document's barcode holds (a personal number, an MRZ, a slip)")
ACTIONS: tuple[Action[SimControls], ...] = (
    Action("scan", "a handheld scanner reads a document's barcode", lambda c, v: c.feed(v["text"]),
           (TEXT,), reads=True),
    Action("type", "a keyboard-mode scanner types the text through a keyboard layout (us, de or fr)",
           lambda c, v: c.type_keys(v["text"], v["layout"]),
           (TEXT, Param("layout", "the keyboard layout", default="us")), reads=True),
    Action("image", "a document is shown to the camera (an image file: a photo or a generated sample)",
           lambda c, v: {"decoded": c.feed_image(v["path"])},
           (Param("path", "an image file", kind="path"),), reads=True),
    Action("drop", "a ballot is dropped into the slot", lambda c, v: c.box.drop(), done="ballot dropped"),
    Action("lid-open", "someone opens the ballot box's lid", lambda c, v: c.box.open_lid(), done="lid open"),
    Action("lid-close", "the lid is closed again", lambda c, v: c.box.close_lid(), done="lid closed"),
    Action("jam", "a ballot sticks in the slot (the drop sensor stays blocked)", lambda c, v: c.box.block_beam(),
           done="slot blocked"),
    Action("unjam", "the stuck ballot is cleared", lambda c, v: c.box.clear_beam(), done="slot cleared"),
    Action("box-unplug", "the ballot box unit's cable is pulled", lambda c, v: c.box.unplug(),
           done="ballot box unplugged"),
    Action("box-replug", "the ballot box unit is plugged back in", lambda c, v: c.box.replug(),
           done="ballot box plugged in"),
    Action("scanner-unplug", "the scanner is unplugged", lambda c, v: c.scanner.unplug(), done="scanner unplugged"),
    Action("scanner-replug", "the scanner is plugged back in", lambda c, v: c.scanner.replug(),
           done="scanner plugged in"),
    Action("link-cut", "the link to the CEC is lost", lambda c, v: c.cut_link(), done="link to the CEC cut"),
    Action("link-restore", "the link to the CEC is back", lambda c, v: c.restore_link(),
           done="link to the CEC restored"),
)
BY_NAME: dict[str, Action[SimControls]] = table(ACTIONS)
