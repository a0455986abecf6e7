"""The hang-up line's ExecIf (telephony/extensions_conf.py write_end): Asterisk splits ExecIf's
argument AFTER variable substitution (apps/app_exec.c execif_exec: at the first '?', then at a
':' outside parentheses, quotes and brackets, main/app.c __ast_app_separate_args), so the spool
folder, which may hold ':' and spaces (telephony/values.py unsafe_path_reason), must never cut
the Set() in two nor reach the false branch. This ports those two splits to check the rendered
line with such a folder."""

from __future__ import annotations

import re
from pathlib import Path

from hotline.asterisk_files import render_asterisk_config
from hotline.config import parse_config
from telephony.asterisk_conf import AsteriskLayout
from telephony.values import unsafe_path_reason

SPOOL = "/srv/hot line:2/spool~a@b+c-d"


def separate(buf: str, delim: str, count: int) -> list[str]:
    """__ast_app_separate_args(buf, delim, remove_chars=0, array, count)."""
    out: list[str] = []
    paren = quote = bracket = 0
    start = i = 0
    while i < len(buf) and len(out) < count - 1:
        c = buf[i]
        if c == "(":
            paren += 1
        elif c == ")":
            paren = max(paren - 1, 0)
        elif c == "[":
            bracket += 1
        elif c == "]":
            bracket = max(bracket - 1, 0)
        elif c == '"' and delim != '"':
            quote ^= 1
        elif c == "\\":
            i += 1
        elif c == delim and not (paren or quote or bracket):
            out.append(buf[start:i])
            start = i + 1
        i += 1
    if start < len(buf) or (start == len(buf) and out):
        out.append(buf[start:])
    return out


def substitute(text: str) -> str:
    """Variable substitution with every variable and function worth '7', every $[] '1'."""
    while (done := re.sub(r"\$\{[^${}]*\}", "7", text)) != text:
        text = done
    return re.sub(r"\$\[[^\[\]]*\]", "1", text)


def execif(data: str) -> tuple[str, str, str | None]:
    """execif_exec's preferred syntax: (condition, true app, true app's data); asserts no false app."""
    comma, question = data.find(","), data.find("?")
    assert question >= 0 and not (0 <= comma < question), "deprecated syntax: split at the comma"
    expr, remainder = separate(data, "?", 2)
    apps = separate(remainder, ":", 2)
    assert len(apps) == 1, f"a ':' cut the true branch: {apps}"
    app, _, rest = apps[0].partition("(")
    return expr, app, rest[: rest.rfind(")")] if ")" in rest else rest


def test_a_spool_folder_with_colons_and_spaces_keeps_the_end_line_whole() -> None:
    assert unsafe_path_reason(SPOOL) is None  # the checker lets it through
    config = parse_config(f"paths: {{spool_dir: '{SPOOL}'}}", "config.yaml", Path("/srv/hotline"))
    layout = AsteriskLayout(Path("/opt/ast"), Path("/srv/etc"), Path("/srv/var/asterisk"))
    extensions = render_asterisk_config(config, layout)["extensions.conf"]
    hold_h = extensions.split("[hotline-hold]\n")[1].split("\n[")[0].split("exten => h,1,")[1].splitlines()[0]
    assert hold_h.startswith("ExecIf(") and hold_h.endswith(")")
    expr, app, data = execif(substitute(hold_h[len("ExecIf(") : -1]))
    assert (expr, app) == ("1", "Set")
    name, _, value = (data or "").partition("=")  # pbx_builtin_setvar: at the first '='
    assert name == f"FILE({SPOOL}/fallback/ce-7.end)"
    assert value == "e2|7|7|7|7|end"
