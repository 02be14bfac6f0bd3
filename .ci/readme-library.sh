#!/usr/bin/env bash
# Checks the README's "## Library" section: every ```rust block is built as
# its own program against `vnn = { path = ..., default-features = false }`
# and run in an empty temporary folder; a block without `fn main` is wrapped
# in `fn main() -> Result<(), Box<dyn std::error::Error>> { ... Ok(()) }`.
# Then the crate budget of that build: at most $VNN_CRATE_BUDGET (40)
# distinct packages in `cargo tree -e normal`, none of the CLI's crates.
# Fails on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
budget=${VNN_CRATE_BUDGET:-40}
work=target/readme-library
pkg=$work/pkg
export CARGO_TARGET_DIR="$root/$work/target"

rm -rf "$pkg"
mkdir -p "$pkg/src/bin"
cat > "$pkg/Cargo.toml" <<EOF
[package]
name = "readme-library"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
vnn = { path = "$root", default-features = false }

# Its own workspace, not a member of vnn's.
[workspace]
EOF
# The versions vnn is tested with.
cp Cargo.lock "$pkg/Cargo.lock"

# The ```rust blocks between "## Library" and the next "## " heading.
blocks=$(awk -v dir="$pkg/src/bin" '
  !inblock && /^## / { inlib = ($0 ~ /^## Library[[:space:]]*$/); next }
  inlib && !inblock && /^```rust[[:space:]]*$/ {
    n++; inblock = 1; file = sprintf("%s/block%d.rs", dir, n); printf "" > file; next
  }
  inblock && /^```[[:space:]]*$/ { inblock = 0; close(file); next }
  inblock { print > file }
  END { print n + 0 }
' README.md)
if [ "$blocks" -eq 0 ]; then
  echo "README.md: no \`\`\`rust blocks in the ## Library section" >&2
  exit 1
fi

for src in "$pkg"/src/bin/block*.rs; do
  if grep -nE '^[[:space:]]*#([[:space:]]|$)' "$src"; then
    echo "$(basename "$src"): rustdoc's hidden '# ' lines are not allowed in README blocks" >&2
    exit 1
  fi
  if ! grep -qE '^[[:space:]]*(pub[[:space:]]+)?fn[[:space:]]+main[[:space:]]*\(' "$src"; then
    {
      echo 'fn main() -> Result<(), Box<dyn std::error::Error>> {'
      cat "$src"
      echo 'Ok(())'
      echo '}'
    } > "$src.tmp"
    mv "$src.tmp" "$src"
  fi
done
echo "README ## Library: $blocks rust blocks"

(cd "$pkg" && cargo build --release --bins)

for n in $(seq 1 "$blocks"); do
  dir=$(mktemp -d)
  echo "--- block$n (in an empty folder)"
  status=0
  (cd "$dir" && timeout 300 "$CARGO_TARGET_DIR/release/block$n") || status=$?
  rm -rf "$dir"
  if [ "$status" -ne 0 ]; then
    echo "README ## Library block $n failed (exit status $status)" >&2
    exit 1
  fi
done

packages=$(cd "$pkg" && cargo tree -e normal --prefix none | sed 's/ (\*)$//' | sort -u)
count=$(printf '%s\n' "$packages" | wc -l)
echo "crates in the default-features = false build: $count (budget $budget)"
forbidden='^(clap|indicatif|ctrlc|anyhow|plotters|dejavu|image|png|ab_glyph|console|prost|crc32c|csv)(-[A-Za-z0-9_-]+)? v'
if printf '%s\n' "$packages" | grep -E "$forbidden"; then
  echo "the default-features = false build pulls in the crates above" >&2
  exit 1
fi
if [ "$count" -gt "$budget" ]; then
  printf '%s\n' "$packages"
  echo "the default-features = false build has $count crates, over the budget of $budget" >&2
  exit 1
fi
