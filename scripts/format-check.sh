#!/usr/bin/env bash
# Checks that every C++ source of the project (server/, tests/, bench/) is formatted as .clang-format says
# (clang-format from Debian, installed by scripts/install-deps.sh). Lists the files that are
# not and exits 1; `clang-format -i FILE` fixes one. Part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# find, not git ls-files: the image's build stage has no .git (.dockerignore).
mapfile -t files < <(find server tests bench -path tests/deploy/node_modules -prune -o \
  -type f \( -name '*.cc' -o -name '*.h' \) -print | sort)
unformatted=()
for file in "${files[@]}"; do
  if ! clang-format --style=file --dry-run --Werror "$file" >/dev/null 2>&1; then
    unformatted+=("$file")
  fi
done
if ((${#unformatted[@]})); then
  echo "format-check: not formatted as .clang-format says (clang-format -i FILE fixes it):" >&2
  printf '  %s\n' "${unformatted[@]}" >&2
  exit 1
fi
echo "format-check: ${#files[@]} files formatted" >&2
