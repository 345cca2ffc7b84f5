#!/usr/bin/env bash
# Regenerates e2e/testdata/ssa/golden/*.json by running every case in e2e/testdata/ssa/cases through
# the real structured-merge-diff library (e2e/tools/smd-oracle), with the schema exported from
# our TypeSchema. Usage: e2e/tools/smd-goldens.sh [ORACLE_BINARY] (built when missing).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
oracle=${1:-/tmp/smd-oracle}
if [ ! -x "$oracle" ]; then
  "$here/smd-oracle/build.sh" "$oracle"
fi
cd "$here/../.."
SMD_ORACLE=$oracle cargo test -p fieldwise-e2e --test emulator -- --ignored ssa_oracle::regenerate_goldens
