#!/usr/bin/env python3
"""Lists the functions longer than a limit (default 100 lines) in lethe's C++ and CUDA sources.

    tools/long-functions.py [--limit N] [--tests] [--check] [PATH ...]

Prints `file:first-last  lines  name`, longest first. PATHs (files or folders) default to the
source folders; tests/ is left out unless --tests is given, and build folders always are. With
--check it exits 1 when anything is listed (for CI), else 0.

How it works: a scan with a brace stack. Comments, string and character literals are blanked
first (raw strings included), keeping the line breaks. Each `{` is classified by the text since
the previous `;`, `{` or `}`: at namespace or class level, text that ends in a parameter list
`(...)` (with optional qualifiers such as `const`, `noexcept`, `override`, `-> T`, or a
constructor's initialiser list) and is not a control statement, an initialiser (`= {`) or a
lambda opens a function body; `namespace`, `struct`, `class`, `union`, `enum` and `extern "C"`
open scopes whose contents are scanned the same way. Everything inside a function body,
lambdas and local classes included, counts towards that function. A function's length is from
the line its declaration starts on to the line of its closing brace, both included (blank and
comment lines count, as a reader sees them).

Limits: it does not run the preprocessor, so a function whose braces differ between #if branches
is measured on the text as written; a constructor whose initialiser list uses braces (`a_{1}`)
is misread (its first brace is taken as the body); macros that expand to a function header are
not recognised. None of these occur in the tree today.
"""
import argparse
import os
import re
import sys

SOURCE_DIRS = ["kernels", "nn", "datasets", "learning", "parallel", "repair", "report", "tools", "util", "bench", "fuzz"]
EXTENSIONS = (".cpp", ".cc", ".h", ".hpp", ".cu", ".cuh")
CONTROL = re.compile(r"^(if|for|while|switch|catch|do|else|try)\b")
SCOPE = re.compile(r"\b(namespace|struct|class|union|enum)\b[^()]*$|^extern\s*$")


def blank_comments_and_strings(text):
    """The text with comments and literals replaced by spaces, line breaks kept."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "R" and text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'R"([^(\s]*)\(', text[i:])
            if not m:
                out.append(c)
                i += 1
                continue
            end = text.find(")" + m.group(1) + '"', i)
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append('""' + re.sub(r"[^\n]", " ", text[i + 2 : j]))
            i = j
        elif c in "\"'":
            if c == "'" and i > 0 and text[i - 1].isalnum():  # a digit separator: 1'000'000
                out.append(" ")
                i += 1
                continue
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(c + " " * (j - i - 2) + c if j - i >= 2 else c)
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def strip_preprocessor(text):
    """Preprocessor lines (with their continuations) blanked: `#define X {` opens nothing."""
    lines = text.split("\n")
    keep, continued = [], False
    for line in lines:
        if continued or line.lstrip().startswith("#"):
            continued = line.rstrip().endswith("\\")
            keep.append("")
        else:
            keep.append(line)
    return "\n".join(keep)


def opens_function(head):
    """Whether the text before a `{` at namespace or class level is a function's header."""
    h = " ".join(head.split())
    if not h or "(" not in h or CONTROL.match(h):
        return False
    if re.search(r"=\s*$", h) or re.search(r"\]\s*(\([^()]*\))?\s*(mutable\s*)?(->[^{]*)?$", h):
        return False  # an initialiser, or a lambda at namespace level
    # The parameter list, then qualifiers, a trailing return type or a constructor's initialisers.
    return re.search(r"\)\s*(const|noexcept|override|final|mutable|volatile|&|&&|\s|->[^{;]*|:[^{;]*)*$", h) is not None


ATTRIBUTES = {"__launch_bounds__", "__attribute__", "alignas", "decltype", "__declspec"}


def name_of(head):
    """The identifier before the parameter list: the first top-level `(` not of an attribute."""
    h = " ".join(head.split())
    depth = 0
    for i, c in enumerate(h):
        if c == "(":
            if depth == 0:
                m = re.search(r"([~\w:<>]+)\s*$", h[:i])
                name = m.group(1) if m else ""
                if name and name not in ATTRIBUTES:
                    return name
            depth += 1
        elif c == ")":
            depth -= 1
    return h[-60:]


def scan(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    text = strip_preprocessor(blank_comments_and_strings(text))
    found = []
    stack = []  # one entry a brace: ("scope" | "function" | "other", start line, name)
    head, head_line = "", None
    line = 1
    for c in text:
        if c == "\n":
            line += 1
            head += " "
            continue
        in_function = any(kind == "function" for kind, _, _ in stack)
        if c == "{":
            if in_function:
                stack.append(("other", line, ""))
            elif opens_function(head):
                stack.append(("function", head_line or line, name_of(head)))
            elif SCOPE.search(" ".join(head.split())) or not head.strip():
                stack.append(("scope", line, ""))
            else:
                stack.append(("other", line, ""))  # an initialiser list, an enum's values
            head, head_line = "", None
        elif c == "}":
            if stack:
                kind, start, name = stack.pop()
                if kind == "function":
                    found.append((start, line, name))
            head, head_line = "", None
        elif c == ";":
            head, head_line = "", None
        else:
            if not c.isspace() and head_line is None:
                head_line = line
            head += c
    return found


def source_files(paths, tests):
    for p in paths:
        if os.path.isfile(p):
            yield p
            continue
        for root, dirs, files in os.walk(p):
            dirs[:] = sorted(d for d in dirs if not d.startswith("build") and not d.startswith(".") and (tests or d != "tests"))
            for f in sorted(files):
                if f.endswith(EXTENSIONS):
                    yield os.path.join(root, f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=100, help="list functions longer than this many lines (default 100)")
    ap.add_argument("--tests", action="store_true", help="scan tests/ too")
    ap.add_argument("--check", action="store_true", help="exit 1 when any function is listed")
    ap.add_argument("paths", nargs="*")
    a = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = a.paths or [os.path.join(root, d) for d in SOURCE_DIRS + (["tests"] if a.tests else []) if os.path.isdir(os.path.join(root, d))]
    rows = []
    for path in source_files(paths, a.tests):
        for start, end, name in scan(path):
            length = end - start + 1
            if length > a.limit:
                rows.append((length, os.path.relpath(path, root), start, end, name))
    rows.sort(key=lambda r: (-r[0], r[1]))
    for length, path, start, end, name in rows:
        print(f"{path}:{start}-{end}  {length}  {name}")
    if not rows:
        print(f"no function over {a.limit} lines")
    return 1 if a.check and rows else 0


if __name__ == "__main__":
    sys.exit(main())
