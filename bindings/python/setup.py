"""Build hook: bundle libkvhygiene into the package.

The shared library comes from, in order:
  1. $KVH_LIBRARY (an existing build, e.g. build/libkvhygiene.so), or
  2. `make -C <repo root> lib` when this directory sits in a kvhygiene checkout.
It is copied (symlinks resolved) to kvhygiene/libkvhygiene.so.1 in the build tree.
"""

import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
BUNDLED = "libkvhygiene.so.1"


def _find_library() -> str:
    env = os.environ.get("KVH_LIBRARY")
    if env:
        path = os.path.realpath(env)
        if not os.path.isfile(path):
            raise SystemExit(f"kvhygiene setup: KVH_LIBRARY={env} does not exist")
        return path
    repo = os.path.abspath(os.path.join(HERE, "..", ".."))
    if not (os.path.isfile(os.path.join(repo, "Makefile")) and os.path.isdir(os.path.join(repo, "capi"))):
        raise SystemExit(
            "kvhygiene setup: not inside a kvhygiene checkout (looked for Makefile and capi/ in "
            f"{repo}); set KVH_LIBRARY to the path of libkvhygiene.so"
        )
    make = os.environ.get("MAKE", "make")
    print(f"kvhygiene setup: building the library: {make} -C {repo} lib")
    subprocess.check_call([make, "-C", repo, "lib"])
    path = os.path.realpath(os.path.join(repo, "build", "libkvhygiene.so"))
    if not os.path.isfile(path):
        raise SystemExit(f"kvhygiene setup: `make lib` did not produce {path}")
    return path


class BuildPyWithLibrary(build_py):
    """build_py that also copies libkvhygiene into the package."""

    def run(self) -> None:
        super().run()
        src = _find_library()
        dst_dir = os.path.join(self.build_lib, "kvhygiene")
        os.makedirs(dst_dir, exist_ok=True)
        dst = os.path.join(dst_dir, BUNDLED)
        shutil.copyfile(src, dst)
        os.chmod(dst, 0o755)
        print(f"kvhygiene setup: bundled {src} as {dst}")


class BinaryDistribution(Distribution):
    """The wheel contains a native library: platform-specific tag."""

    def has_ext_modules(self) -> bool:
        return True


setup(cmdclass={"build_py": BuildPyWithLibrary}, distclass=BinaryDistribution)
