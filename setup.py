"""Only to keep the test suites out of the wheel: bench/test_*.py are pytest suites
(`pytest bench/ -k gso`), not part of the installed harness. Everything else is in pyproject.toml."""

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithoutSuites(build_py):
    def find_package_modules(self, package, package_dir):
        modules = super().find_package_modules(package, package_dir)
        return [(pkg, mod, path) for pkg, mod, path in modules if not mod.startswith("test_")]


setup(cmdclass={"build_py": BuildPyWithoutSuites})
