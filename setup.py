"""Only the optional C extension lives here; everything else is in pyproject.toml.

``enumer.dns._fastloop`` is the gateway worker's UDP loop in C.  It is
``optional``: on a machine without a C compiler or Python headers the build
prints a warning, the package installs without it, and the gateway runs the
same loop in Python.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "enumer.dns._fastloop",
            sources=["src/enumer/dns/_fastloop.c"],
            optional=True,
            # Warnings are errors: a warning in this file is a bug in C that
            # the tests may not reach; CI also runs it under AddressSanitizer
            # (tests/dns/test_fastloop_asan.py).
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror"],
        )
    ]
)
