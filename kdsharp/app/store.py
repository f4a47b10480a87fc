"""The blind-comparison votes on disk: one SQLite file, and a side file for votes it could not take.

    store = VoteStore("kdsharp-votes.db")
    result = store.add(VoteRecord(a="fast", b="teacher", choice="B", image_png=crop_png))
    result.saved, result.message        # False + a clear message if the database was locked or damaged
    votes = store.votes()               # [kdsharp.evaluate.votes.Vote, ...] for the ranking

Every vote is written in its own transaction, so votes survive a restart or a crash. When the
database is locked (another program writing to it) SQLite waits up to ``timeout`` seconds, then
tries once more; if it still cannot write, or the file is not a readable SQLite database, the
vote is appended to ``<db>.pending.jsonl`` beside it (flushed into the database on the next
vote, at start-up and by :meth:`VoteStore.flush`) and the message says so. The damaged file is
never overwritten. Only when the side file cannot be written either is the vote lost, and then
:class:`VoteStoreError` says so. No gradio here: ``kdsharp eval --votes`` reads votes with this.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import json
import os
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kdsharp.errors import InputError, OutputError
from kdsharp.evaluate.votes import CHOICES, Ranking, Vote, rank_votes, ranking_markdown

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    sha256 TEXT PRIMARY KEY,
    png BLOB NOT NULL,
    width INTEGER, height INTEGER
);
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uid TEXT UNIQUE NOT NULL,
    time TEXT NOT NULL,
    a TEXT NOT NULL,
    b TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('A', 'B', 'same')),
    winner TEXT,
    image TEXT REFERENCES images(sha256),
    reference TEXT REFERENCES images(sha256),
    source TEXT, preset TEXT, seed INTEGER, box TEXT,
    session TEXT, seconds REAL
);
"""


class VoteStoreError(OutputError):
    """A vote database that cannot be read or written (locked, damaged, in an unwritable folder)."""


@dataclass
class VoteRecord:
    """One blind-comparison vote: methods shown as A and B, the choice and what was compared.

    ``image_png``: the input crop both methods processed (PNG bytes); ``reference_png``: the
    clean crop it was degraded from, if any; ``box``: ``(x, y, w, h)`` of the crop in ``source``.
    """

    a: str
    b: str
    choice: str
    image_png: bytes | None = None
    reference_png: bytes | None = None
    source: str | None = None
    preset: str | None = None
    seed: int | None = None
    box: tuple[int, int, int, int] | None = None
    session: str | None = None
    seconds: float | None = None  # from showing the pair to the vote
    time: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self):
        Vote(self.a, self.b, self.choice)  # validates the choice and the pair

    @property
    def winner(self) -> str | None:
        return {"A": self.a, "B": self.b}.get(self.choice)

    def to_json(self) -> str:
        d = asdict(self)
        for k in ("image_png", "reference_png"):
            d[k] = base64.b64encode(d[k]).decode("ascii") if d[k] is not None else None
        return json.dumps(d)

    @classmethod
    def from_json(cls, line: str) -> VoteRecord:
        d = json.loads(line)
        for k in ("image_png", "reference_png"):
            d[k] = base64.b64decode(d[k]) if d.get(k) is not None else None
        if d.get("box") is not None:
            d["box"] = tuple(d["box"])
        return cls(**d)


@dataclass
class SaveResult:
    """What :meth:`VoteStore.add` did: ``saved`` in the database (``vote_id``) or queued (``message`` says why)."""

    saved: bool
    vote_id: int | None
    message: str


def _image_size(png: bytes) -> tuple[int | None, int | None]:
    if png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) >= 24:
        return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    return None, None


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _lock_file(f) -> None:
    """An exclusive lock on open file ``f`` for as long as it stays open (no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows: one server per database
        return
    fcntl.flock(f.fileno(), fcntl.LOCK_EX)


class VoteStore:
    """Votes in the SQLite file ``path`` (created with its folder on the first vote).

    Args:
        timeout: seconds SQLite waits for a lock before giving up once (it then retries once).
    """

    def __init__(self, path: str | Path, timeout: float = 5.0):
        self.path = Path(path)
        self.pending_path = self.path.with_name(self.path.name + ".pending.jsonl")
        self.timeout = float(timeout)
        self._lock = threading.Lock()

    # -- connections -------------------------------------------------------------------------
    def _error(self, e: BaseException, doing: str) -> VoteStoreError:
        text = str(e)
        if isinstance(e, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return VoteStoreError(
                self.path,
                f"database is locked (another program is writing to it) while {doing}",
                "close the other program; votes wait in " + self.pending_path.name,
            )
        if isinstance(e, sqlite3.OperationalError) and "readonly" in text.replace(" ", "").replace("-", ""):
            return VoteStoreError(
                self.path,
                f"database is read-only while {doing}",
                "check its permissions, or pass votes=PATH with a writable path",
                params=["votes"],
            )
        if isinstance(e, sqlite3.OperationalError) and "unable to open" in text:
            return VoteStoreError(
                self.path,
                f"cannot be opened while {doing}",
                "check that its folder exists and is writable, or pass votes=OTHER.db",
                params=["votes"],
            )
        if isinstance(e, sqlite3.DatabaseError):
            return VoteStoreError(
                self.path,
                f"is not a readable SQLite database ({text}) while {doing}",
                "it is left untouched: move it aside to start a new one, or pass votes=OTHER.db",
                params=["votes"],
            )
        return VoteStoreError(self.path, f"{type(e).__name__}: {text} while {doing}", "check the file and its folder")

    @contextlib.contextmanager
    def _connect(self, doing: str, create: bool = True) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode with the schema in place; errors as :class:`VoteStoreError`."""
        if not create and not self.path.is_file():
            raise InputError(
                self.path, "no such vote database", "pass the votes=FILE that the app wrote", params=["votes"]
            )
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                con = sqlite3.connect(str(self.path), timeout=self.timeout, isolation_level=None)
            else:
                # as_uri() percent-encodes the path: a '#', '?' or '%' in a name must not end or alter it
                con = sqlite3.connect(
                    self.path.resolve().as_uri() + "?mode=ro", uri=True, timeout=self.timeout, isolation_level=None
                )
        except (sqlite3.Error, OSError) as e:
            raise self._error(e, doing) from e
        try:
            try:
                version = con.execute("PRAGMA user_version").fetchone()[0]
                if create and version < SCHEMA_VERSION:
                    con.executescript("BEGIN IMMEDIATE;" + _SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
                elif version > SCHEMA_VERSION:
                    raise VoteStoreError(
                        self.path, f"was written by a newer kdsharp (schema {version})", "upgrade kdsharp to read it"
                    )
                yield con
            except sqlite3.Error as e:
                if con.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        con.execute("ROLLBACK")
                raise self._error(e, doing) from e
        finally:
            con.close()

    def _insert(self, con: sqlite3.Connection, rec: VoteRecord) -> int:
        shas: list[str | None] = []
        for png in (rec.image_png, rec.reference_png):
            if png is None:
                shas.append(None)
                continue
            sha = _sha256(png)
            w, h = _image_size(png)
            con.execute(
                "INSERT OR IGNORE INTO images (sha256, png, width, height) VALUES (?, ?, ?, ?)", (sha, png, w, h)
            )
            shas.append(sha)
        cur = con.execute(
            "INSERT OR IGNORE INTO votes (uid, time, a, b, choice, winner, image, reference, source, preset, seed, box,"
            " session, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rec.uid,
                rec.time,
                rec.a,
                rec.b,
                rec.choice,
                rec.winner,
                shas[0],
                shas[1],
                rec.source,
                rec.preset,
                rec.seed,
                json.dumps(list(rec.box)) if rec.box is not None else None,
                rec.session,
                rec.seconds,
            ),
        )
        if cur.rowcount == 0:  # already there (a queued vote flushed twice)
            return int(con.execute("SELECT id FROM votes WHERE uid = ?", (rec.uid,)).fetchone()[0])
        return int(cur.lastrowid or 0)

    def _write(self, records: list[VoteRecord], doing: str) -> list[int]:
        """Insert ``records`` in one transaction, retrying once after a lock time-out."""
        for attempt in range(2):
            try:
                with self._connect(doing) as con:
                    con.execute("BEGIN IMMEDIATE")
                    ids = [self._insert(con, r) for r in records]
                    con.execute("COMMIT")
                    return ids
            except VoteStoreError as e:
                if attempt == 0 and "locked" in str(e):
                    time.sleep(0.2)
                    continue
                raise
        raise AssertionError("unreachable")

    # -- the side file -----------------------------------------------------------------------
    def _open_pending(self, mode: str):
        """The side file opened with ``mode`` ('a' creates it, 'r+' gives None when there is none) and
        locked against other processes (another server on the same database) until closed."""
        while True:
            try:
                f = open(self.pending_path, mode, encoding="utf-8", errors="surrogateescape")
            except FileNotFoundError:
                if mode == "a":
                    raise
                return None
            try:
                _lock_file(f)
                st = os.fstat(f.fileno())
                if os.stat(self.pending_path).st_ino == st.st_ino:  # not removed by a flush while we waited
                    return f
            except FileNotFoundError:
                pass
            except BaseException:
                f.close()
                raise
            f.close()

    def _queue(self, rec: VoteRecord) -> None:
        try:
            with self._open_pending("a") as f:
                f.write(rec.to_json() + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise VoteStoreError(
                self.pending_path,
                f"the vote could NOT be saved: neither the database nor this file can be written ({e.strerror or e})",
                "check free space and permissions, or restart with votes=PATH in a writable folder",
                params=["votes"],
            ) from e

    def _unreadable(self, e: OSError) -> VoteStoreError:
        return VoteStoreError(
            self.pending_path,
            f"the queued votes cannot be read ({e.strerror or e})",
            "check its permissions, or move it aside",
        )

    @staticmethod
    def _parse(text: str) -> tuple[list[VoteRecord], list[str]]:
        good, bad = [], []
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                line.encode("utf-8")  # undecodable bytes: a damaged line (UnicodeEncodeError is a ValueError)
                good.append(VoteRecord.from_json(line))
            except (ValueError, TypeError, KeyError):
                bad.append(line)
        return good, bad

    def pending(self) -> tuple[list[VoteRecord], list[str]]:
        """Votes waiting in the side file, and its lines that could not be parsed (kept as they are)."""
        if not self.pending_path.is_file():
            return [], []
        try:  # undecodable bytes stay as they are (surrogateescape) in the lines kept unparsed
            text = self.pending_path.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError as e:
            raise self._unreadable(e) from e
        return self._parse(text)

    def flush(self) -> int:
        """Move the queued votes into the database; returns how many (raises :class:`VoteStoreError`).

        The side file stays locked meanwhile, so that a vote another process queues is not lost."""
        with self._lock:
            try:
                f = self._open_pending("r+")
            except OSError as e:
                raise self._unreadable(e) from e
            if f is None:
                return 0
            with f:
                try:
                    good, bad = self._parse(f.read())
                except OSError as e:
                    raise self._unreadable(e) from e
                if not good:
                    return 0
                self._write(good, "adding the queued votes")
                if bad:
                    f.seek(0)
                    f.truncate()
                    f.write("".join(line + "\n" for line in bad))
                    f.flush()
                else:
                    self.pending_path.unlink(missing_ok=True)  # before the lock is released
                return len(good)

    # -- public ------------------------------------------------------------------------------
    def check(self) -> str | None:
        """Open (or create) the database and flush queued votes; a one-line problem, or None if all is well."""
        try:
            self.flush()
            with self._connect("opening it"):
                pass
        except VoteStoreError as e:
            return str(e)
        return None

    def add(self, rec: VoteRecord) -> SaveResult:
        """Store one vote: in the database if possible, else in the side file (see the module docstring)."""
        try:
            flushed = self.flush()
            with self._lock:
                (vote_id,) = self._write([rec], "saving a vote")
        except VoteStoreError as e:
            with self._lock:
                self._queue(rec)
            return SaveResult(
                False,
                None,
                f"{e}. Your vote is kept in {self.pending_path} and will be added to the "
                "database when it can be written.",
            )
        extra = f" (and {flushed} queued vote{'s' if flushed != 1 else ''})" if flushed else ""
        return SaveResult(True, vote_id, f"vote #{vote_id} saved in {self.path}{extra}")

    def records(self) -> list[dict]:
        """Every vote in the database, oldest first, as dicts of its columns (images as sha256)."""
        if not self.path.is_file():
            return []
        with self._connect("reading the votes", create=False) as con:
            con.row_factory = sqlite3.Row
            if not con.execute("SELECT name FROM sqlite_master WHERE name = 'votes'").fetchone():
                return []
            return [dict(r) for r in con.execute("SELECT * FROM votes ORDER BY id")]

    def votes(self, include_pending: bool = True) -> list[Vote]:
        """The votes for :func:`kdsharp.evaluate.votes.rank_votes`: the database's and the queued ones."""
        rows = self.records()
        out = [Vote(r["a"], r["b"], r["choice"]) for r in rows]
        if include_pending:
            seen = {r["uid"] for r in rows}
            out += [Vote(r.a, r.b, r.choice) for r in self.pending()[0] if r.uid not in seen]
        return out

    def pair_counts(self) -> Counter:
        """Votes so far per unordered pair of methods (``frozenset({a, b})``), queued ones included."""
        return Counter(frozenset((v.a, v.b)) for v in self.votes())

    def image(self, sha256: str) -> bytes | None:
        """The PNG bytes of a stored crop."""
        with self._connect("reading an image", create=False) as con:
            row = con.execute("SELECT png FROM images WHERE sha256 = ?", (sha256,)).fetchone()
        return bytes(row[0]) if row else None


__all__ = ["VoteStore", "VoteRecord", "SaveResult", "VoteStoreError", "SCHEMA_VERSION", "CHOICES", "vote_report"]


def vote_report(
    db: str | Path, out_dir: str | Path | None = None, bootstrap: int = 1000, seed: int = 0
) -> tuple[Ranking, str]:
    """Rank the votes of a ``kdsharp app`` database (queued votes included): ``(ranking, markdown)``.

    With ``out_dir``, PSNR/SSIM columns come from ``out_dir/report.json`` (a ``kdsharp eval``
    report) when it exists, and ``votes.md`` and ``votes.json`` are written there.
    """
    import json

    from kdsharp.io.atomic import atomic_path, ensure_writable_dir
    from kdsharp.io.inputs import NOT_REGULAR

    path = Path(db)
    problem = None
    if not path.exists():
        problem = "no such vote database"
    elif path.is_dir():
        problem = "is a folder, not a vote database"
    elif not path.is_file():
        problem = NOT_REGULAR
    elif path.stat().st_size == 0 and not path.with_name(path.name + ".pending.jsonl").exists():
        problem = "file is empty, not a vote database"  # SQLite would read it as one without votes
    if problem is not None:
        raise InputError(db, problem, "pass the votes=FILE that `kdsharp app` wrote", params=["votes"])
    store = VoteStore(db)
    ranking = rank_votes(store.votes(), bootstrap=bootstrap, seed=seed)
    queued = len(store.pending()[0])
    if queued:
        ranking.notes.append(
            f"{queued} of these votes are still queued in {store.pending_path.name} "
            "(the database could not take them yet)"
        )
    quality = None
    if out_dir is not None:
        report = Path(out_dir) / "report.json"
        if report.is_file():
            try:
                loaded = json.loads(report.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
                loaded = e
            if not isinstance(loaded, dict):
                raise InputError(
                    report,
                    "is not a readable `kdsharp eval` report"
                    + (f" ({loaded})" if isinstance(loaded, Exception) else ""),
                    "run `kdsharp eval` again into out_dir=DIR, or pass another out_dir=DIR",
                    params=["out_dir"],
                )
            quality = loaded.get("overall")
    md = f"Blind comparison: {Path(db).name}\n\n" + ranking_markdown(ranking, quality)
    if out_dir is not None:
        out = ensure_writable_dir(out_dir)
        with atomic_path(out / "votes.md") as tmp:
            tmp.write_text(md, encoding="utf-8")
        with atomic_path(out / "votes.json") as tmp:
            tmp.write_text(
                json.dumps({**ranking.as_dict(), "database": str(db), "quality": quality}, indent=2), encoding="utf-8"
            )
    return ranking, md
