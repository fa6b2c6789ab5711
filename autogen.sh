#!/bin/sh
# Regenerates the build system (configure, Makefile.in, po/ infrastructure).
set -e
cd "$(dirname "$0")"
autoreconf --force --install --verbose
