#!/usr/bin/env bash
#! Lists the Rust source files over 400 lines and the functions over 80 lines, outside tests
#! (files named tests.rs or under a tests/ folder, and `#[cfg(test)]` modules) and generated code,
#! as ARCHITECTURE.md's "Size" asks. Brace counting with strings and comments stripped: a
#! guide for review, not a parser. Exit status 0 either way.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.rs' | grep -v -E '(^|/)tests(/|\.rs$)|/benches/')
echo "files over 400 lines:"
for f in $files; do
    n=$(wc -l < "$f")
    [ "$n" -gt 400 ] && echo "  $n $f"
done
echo "functions over 80 lines:"
for f in $files; do
    awk -v file="$f" '
        function strip(line) {
            gsub(/"([^"\\]|\\.)*"/, "\"\"", line)
            gsub(/\x27([^\x27\\]|\\.)\x27/, "\x27\x27", line)
            sub(/\/\/.*/, "", line)
            return line
        }
        /^[[:space:]]*#\[cfg\(test\)\]/ { exit }
        {
            line = strip($0)
            if (name == "" && match(line, /(^|[[:space:]])fn [A-Za-z_][A-Za-z0-9_]*/)) {
                name = substr(line, RSTART, RLENGTH); sub(/.*fn /, "", name)
                start = NR; depth = 0; opened = 0
            }
            if (name != "") {
                for (i = 1; i <= length(line); i++) {
                    c = substr(line, i, 1)
                    if (c == "{") { depth++; opened = 1 }
                    else if (c == "}") depth--
                }
                if (!opened && line ~ /;[[:space:]]*$/) { name = "" }
                else if (opened && depth <= 0) {
                    if (NR - start + 1 > 80) printf "  %d %s:%d %s\n", NR - start + 1, file, start, name
                    name = ""
                }
            }
        }' "$f"
done
