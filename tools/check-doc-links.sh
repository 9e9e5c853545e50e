#!/usr/bin/env bash
# Checks the links of lethe's Markdown: README.md and docs/*.md (or the files given).
#   bash tools/check-doc-links.sh [FILE.md ...]
# Every relative link, [text](target) or a reference [label]: target, must name a file or folder
# that exists (relative to the linking file), and a link with a heading, file.md#heading or
# #heading, must name a heading of that file as GitHub spells its anchor (lower case, punctuation
# dropped, spaces to hyphens, -1, -2 ... for repeats). Plain mentions of docs/NAME.md in the text
# must name a page that exists too. Links to http(s) and mailto are not followed. Text inside
# ``` fences and `code spans` is not read. Prints one line a broken link; exits 1 if any.
# Nothing but bash, grep and sed.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C.UTF-8

files=("$@")
[ ${#files[@]} -gt 0 ] || files=(README.md docs/*.md)

# The file's prose: code fences and code spans blanked, so line numbers stay those of the file.
prose() {
  sed -E '/^[[:space:]]*(```|~~~)/,/^[[:space:]]*(```|~~~)/ s/.*//; s/`[^`]*`//g' "$1"
}

# GitHub's anchors for the headings of a Markdown file, one a line.
anchors() {
  local -A seen=()
  local slug
  while IFS= read -r slug; do
    if [ -n "${seen[$slug]+x}" ]; then
      seen[$slug]=$((seen[$slug] + 1))
      printf '%s-%s\n' "$slug" "${seen[$slug]}"
    else
      seen[$slug]=0
      printf '%s\n' "$slug"
    fi
  done < <(sed -E '/^[[:space:]]*(```|~~~)/,/^[[:space:]]*(```|~~~)/ d' "$1" | grep -E '^#{1,6}[[:space:]]' |
    sed -E 's/^#+[[:space:]]+//; s/[[:space:]]+#+[[:space:]]*$//; s/.*/\L&/; s/[^[:alnum:] _-]//g; s/ /-/g')
}

declare -A anchor_cache=()
has_anchor() {  # file anchor
  [ -n "${anchor_cache[$1]+x}" ] || anchor_cache[$1]=$(anchors "$1")
  grep -qxF -- "$2" <<<"${anchor_cache[$1]}"
}

broken=0
report() {
  echo "$1: broken link: $2"
  broken=$((broken + 1))
}

check_target() {  # file line target
  local file=$1 where=$2 target=$3 path anchor dir resolved
  case $target in
    http://* | https://* | mailto:*) return ;;
  esac
  target=${target%% *}  # [text](target "title")
  path=${target%%#*}
  anchor=
  [[ $target == *#* ]] && anchor=${target#*#}
  dir=$(dirname "$file")
  if [ -z "$path" ]; then
    resolved=$file
  else
    resolved="$dir/$path"
    if [ ! -e "$resolved" ]; then
      report "$file:$where" "$target (no such file)"
      return
    fi
  fi
  if [ -n "$anchor" ]; then
    if [[ $resolved != *.md ]]; then
      report "$file:$where" "$target (a heading in a file that is not Markdown)"
    elif ! has_anchor "$resolved" "$anchor"; then
      report "$file:$where" "$target (no such heading)"
    fi
  fi
}

for file in "${files[@]}"; do
  [ -f "$file" ] || { report "$file" "(no such file to check)"; continue; }
  text=$(prose "$file")
  # [text](target): the number of the line it starts on, and the target.
  while IFS=: read -r n target; do
    check_target "$file" "$n" "$target"
  done < <(grep -noE '\]\([^)]+\)' <<<"$text" | sed -E 's/^([0-9]+):\]\((.*)\)$/\1:\2/')
  # [label]: target
  while IFS=: read -r n target; do
    check_target "$file" "$n" "$target"
  done < <(grep -nE '^[[:space:]]*\[[^]]+\]:[[:space:]]+[^[:space:]]' <<<"$text" |
    sed -E 's/^([0-9]+):[[:space:]]*\[[^]]+\]:[[:space:]]+([^[:space:]]+).*$/\1:\2/')
  # docs/NAME.md named in the text (relative to the repository's root)
  while IFS=: read -r n page; do
    [ -e "$page" ] || report "$file:$n" "$page (mentioned, no such page)"
  done < <(grep -noE '(^|[^[:alnum:]_./-])docs/[[:alnum:]_-]+\.md' <<<"$text" | sed -E 's/^([0-9]+):[^d]*/\1:/')
done

if [ $broken -gt 0 ]; then
  echo "$broken broken link(s)"
  exit 1
fi
echo "links: ${#files[@]} files checked, none broken"
