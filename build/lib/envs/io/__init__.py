"""Writing files safely: atomic writes (a reader sees the old file or the new one, never half of either) and one
process per output directory. Depends on nothing else in the project."""

from envs.io.atomic import atomic_path, refuse_same_file, write_text_atomic
from envs.io.run_lock import DirectoryBusyError, DirectoryLock, check_writable_dir

__all__ = ["DirectoryBusyError", "DirectoryLock", "atomic_path", "check_writable_dir", "refuse_same_file", "write_text_atomic"]
