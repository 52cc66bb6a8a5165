"""The one thing pyproject.toml cannot declare without an experimental table: the
optional C fast path of OTLP flattening (collector/fast_flatten.py). Without a
compiler the install still succeeds and flowscope uses the Python path."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "flowscope.collector._fastflatten",
            sources=["collector/_fastflatten.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
