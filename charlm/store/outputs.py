"""The files charlm writes, and the rules that keep a user's files safe (docs/files.md):

- no command replaces a file that it reads in the same run (the corpus, the checkpoint, a
  ``--text`` file), with or without ``--force``: paths are compared as files
  (``os.path.samefile``), so a link or another spelling of the same path counts too;
- every output path is checked before any work: not a folder, not a device or other special
  file, in a folder that exists and in which a file can be created (tried, not guessed from the
  permission bits, which root and read-only mounts make misleading);
- a new file gets the mode 0666 less the umask, as a file that ``open`` creates does; a file
  replaced keeps its permission bits (:func:`mode_for`);
- every file is written atomically (:func:`write_atomically`): a temporary file in the same folder,
  flushed to disk, then renamed over the path, so a failure at any moment leaves the previous file
  or the new one, never a torn one; a symbolic link at the path is followed, and stays a link;
- one writer per checkpoint: :class:`OutputLock` holds an OS lock (``flock``) on ``OUT.lock``
  while a run may write OUT. The kernel drops the lock when its process ends, however it ends,
  so a lock file left by a killed run (kill -9) blocks nothing.
"""
import errno
import fcntl
import os
import re
import socket
import stat
import sys
import tempfile

from ..errors import OutputInUse, UsageError


def check_writable(path, option, example="charlm.npz"):
    """Raise UsageError in one line unless a file can be written at path (``option`` names the
    path in the message; ``example`` is the file name suggested when path is a folder)."""
    path = os.fspath(path)
    if not path:
        raise UsageError(f"{option} is empty: give a file name such as {example}")
    if path.endswith(os.sep) and not os.path.isdir(path):
        raise UsageError(f"{option} {path} names a folder, and there is none: give a file name "
                         f"such as {os.path.join(path, example)}")
    if os.path.isdir(path):
        raise UsageError(f"{option}: cannot write {path}: it is a folder; give a file name such "
                         f"as {os.path.join(path, example)}")
    target = os.path.realpath(path)     # a link is written through (write_atomically)
    if os.path.lexists(target) and not os.path.isfile(target):
        raise UsageError(f"{option}: {path} is not a regular file; charlm writes only regular "
                         "files")
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise UsageError(f"{option}: cannot write {path}: there is no folder {folder}")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".charlm-probe-")
    except OSError as e:
        raise UsageError(f"{option}: cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    os.unlink(probe)


def refuse_inputs(path, option, inputs):
    """Raise UsageError if the output path is one of the files this run reads. ``inputs`` holds
    (path or None, what it is to the run), e.g. ``(corpus, "the corpus")``."""
    if not os.path.exists(path):
        return
    for source, what in inputs:
        if source is not None and os.path.exists(source) and os.path.samefile(path, source):
            raise UsageError(f"{option} {path} is {what} this run reads; charlm never writes over "
                             "a file it reads (--force does not change that): choose another "
                             f"{option}")


def umask():
    """The process's umask (read, not changed: from /proc where it is there)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)      # the only portable way to read it is to set it and set it back
    os.umask(mask)
    return mask


def mode_for(path):
    """Permission bits for a file about to be written at path: those of the file it replaces, or
    0666 less the umask for a new one (what ``open`` would give; temporary files get 0600)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~umask()


def write_atomically(path, write, error=UsageError, kept="the previous file (if any) is unchanged"):
    """Write the file at path through ``write(binary_file)`` atomically (see the module
    docstring), with the mode :func:`mode_for` gives. A symbolic link at path is followed: the
    file it names is replaced and the link stays. An OSError becomes ``error`` in one line."""
    target = os.path.realpath(path)
    folder = os.path.dirname(target)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".charlm-", suffix=".tmp")
        os.fchmod(fd, mode_for(target))   # mkstemp's 0600 would hide a shared file from others
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        tmp = None
        _fsync_folder(folder)
    except OSError as e:
        raise error(f"could not write {path}: {e.strerror or e}; {kept}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _fsync_folder(folder):
    """Make the rename itself durable (POSIX); harmless where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class OutputLock:
    """An exclusive lock on writing ``path``: ``flock`` on the file ``path + ".lock"``, which
    holds the holder's process id, host and command line for the message a second run shows.

    The lock file is removed on release; a run that is killed leaves it, unlocked. Acquiring
    checks that the file it locked is still the one at the lock's path, since its holder may
    remove it between this process's open and flock. A file at that path that is not a lock
    (a symbolic link, not a regular file, or text that is not a holder's record) is the user's:
    it is refused before anything is written to it."""

    def __init__(self, path, option="--out"):
        self.path, self.option = path, option
        self.lock_path = os.path.realpath(path) + ".lock"   # one lock for a file and its links
        self.fd = None

    def acquire(self):
        while True:
            try:     # O_NOFOLLOW: a symbolic link there is never followed to write elsewhere
                fd = os.open(self.lock_path, os.O_RDWR | os.O_NOFOLLOW)
            except FileNotFoundError:
                fd = self._create()
                if fd is None:          # another run's lock appeared first: look at it
                    continue
                self.fd = fd
                return self
            except OSError as e:
                what = ("is a symbolic link, not a charlm lock file"
                        if os.path.islink(self.lock_path)
                        else f"cannot be opened: {e.strerror or e}")
                raise UsageError(f"{self.option}: {self.lock_path} {what}; remove it or choose "
                                 f"another {self.option}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise OutputInUse(f"{self.path} is being written by another charlm run "
                                  f"({holder}); wait for it to end or choose another "
                                  f"{self.option}") from None
            try:
                current = os.stat(self.lock_path)
            except FileNotFoundError:
                current = None
            if current is not None and os.path.samestat(os.fstat(fd), current):
                break
            os.close(fd)
        if not _holds_a_lock_record(fd):
            os.close(fd)
            raise UsageError(f"{self.option}: {self.lock_path} exists and is not a charlm lock "
                             "file (charlm never writes over it): move it away or choose another "
                             f"{self.option}")
        os.ftruncate(fd, 0)             # a lock its killed holder left: taken over
        os.lseek(fd, 0, os.SEEK_SET)        # the check above read from the start: write there
        os.write(fd, _record())
        self.fd = fd
        return self

    def _create(self):
        """A new lock file at the lock's path, locked and holding this run's record from the
        moment it appears there (a file written and locked beside it, then linked into place),
        so no run ever finds a lock file without a record; None if one appeared there first."""
        folder, name = os.path.split(self.lock_path)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}-", suffix=".tmp")
        try:
            os.fchmod(fd, 0o666 & ~umask())
            os.write(fd, _record())
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.link(tmp, self.lock_path)
        except FileExistsError:
            os.close(fd)
            return None
        except OSError as e:
            os.close(fd)
            if e.errno not in NO_HARD_LINKS:
                raise UsageError(f"{self.option}: {self.lock_path} cannot be created: "
                                 f"{e.strerror or e}; choose another {self.option}") from None
            return self._create_in_place()
        finally:
            os.unlink(tmp)
        return fd

    def _create_in_place(self):
        """:meth:`_create` on a file system without hard links: created, locked, then written
        (a run that looks in between finds it empty and refuses it as no lock)."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                         0o666)
        except FileExistsError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:         # another run took it in between: look at it again
            os.close(fd)
            return None
        os.write(fd, _record())
        return fd

    def release(self):
        if self.fd is None:
            return
        try:            # only the file this run locked: never one put there since
            if os.path.samestat(os.fstat(self.fd), os.lstat(self.lock_path)):
                os.unlink(self.lock_path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def __del__(self):          # a run prepared and dropped without running lets go too
        try:
            self.release()
        except Exception:       # at interpreter exit os may be gone; the kernel lets go anyway
            pass

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


LOCK_RECORD = re.compile(rb"\d+\n\S+\n.*\n", re.DOTALL)     # process id, host, command


NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV)


def _record():
    """This run's lock record: process id, host and command line, a line each (the command's
    bytes as given: an argument need not be valid UTF-8)."""
    command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
    return f"{os.getpid()}\n{socket.gethostname()}\n{command}\n".encode(errors="surrogateescape")


def _holds_a_lock_record(fd):
    """Whether the file open at fd is a lock file that a run left: a regular file holding a whole
    record as :func:`_record` writes it (a lock file appears with its record: an empty file is
    not one)."""
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        return False
    os.lseek(fd, 0, os.SEEK_SET)
    return LOCK_RECORD.fullmatch(os.read(fd, 1 << 20)) is not None


def _read_holder(fd):
    """'process PID on HOST: COMMAND' from a lock file, as far as its holder has written it."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        lines = os.read(fd, 4096).decode(errors="replace").splitlines()
    except OSError:
        lines = []
    if not lines or not lines[0].strip().isdigit():
        return "its process is starting"
    holder = f"process {lines[0].strip()}"
    if len(lines) > 1 and lines[1] != socket.gethostname():
        holder += f" on {lines[1]}"
    if len(lines) > 2 and lines[2]:
        holder += f": {lines[2]}"
    return holder
