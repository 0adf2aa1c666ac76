"""Mount test: store entries whose names are hostile text.

Two bad containers sit next to a good model: one named
"evil\\nmodelfs: forged line.mfs" (a newline followed by text that looks
like a daemon log line) and one named b"\\xff\\xfe.mfs" (not UTF-8).  Names
reach people through the daemon's log, /.status and modelctl; none of
them may carry a raw control character or invalid UTF-8:

- the daemon log has no line that starts with the forged text, and names
  both files escaped ("evil\\nmodelfs...", "\\xff\\xfe.mfs");
- /.status opens, is valid JSON and lists both files as skipped;
- "modelctl ls" of the store and of the mount (table and --json) prints
  valid UTF-8 without control characters (JSON: valid JSON);
- "modelctl verify" and "modelctl inspect" of the files print their
  names escaped in the error."""

import json
import os
import shutil

import numpy as np

import harness as h

FORGED = "modelfs: forged line"
EVIL = "evil\n" + FORGED + ".mfs"
EVIL_ESCAPED = "evil\\n" + FORGED + ".mfs"
BADUTF = b"\xff\xfe.mfs"
BADUTF_ESCAPED = "\\xff\\xfe.mfs"
# What .status gives as the file name: valid UTF-8 verbatim (JSON escapes
# the newline itself), anything else as escaped text.
STATUS_NAMES = {EVIL, BADUTF_ESCAPED}
# Bytes a line of human-readable output may hold besides printable text.
LINE_END = 0x0A
DEL = 0x7F
SPACE = 0x20


def text_problems(what, data):
    """Why @data (bytes printed by a program) is not safe text: invalid
    UTF-8, control characters other than the line ends, forged lines."""
    out = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return ["%s is not valid UTF-8 (%s): %r" % (what, e, data)]
    bad = sorted({b for b in data
                  if (b < SPACE and b != LINE_END) or b == DEL})
    if bad:
        out.append("%s has control bytes %s: %r" % (what, bad, data))
    for ln in text.splitlines():
        if ln.startswith(FORGED) or ln.startswith("forged line"):
            out.append("%s has a forged line: %r" % (what, text))
    return out


def run_ctl(args):
    """Runs modelctl; returns (exit status, stdout bytes, stderr bytes)."""
    p = h.run_tool([os.fsencode(h.MODELCTL)] + args, check_ok=False)
    return p.returncode, p.stdout, p.stderr


def check_ls(errors, target, label):
    rc, out, err = run_ctl([b"ls", os.fsencode(target)])
    if rc != 0:
        errors.append("modelctl ls %s failed (%d): %r %r" % (label, rc, out,
                                                              err))
    errors.extend(text_problems("modelctl ls %s stdout" % label, out))
    errors.extend(text_problems("modelctl ls %s stderr" % label, err))
    text = out.decode("utf-8", "replace")
    for want in (EVIL_ESCAPED, BADUTF_ESCAPED):
        if want not in text:
            errors.append("modelctl ls %s does not name %r: %r" %
                          (label, want, text))
    rc, out, err = run_ctl([b"ls", b"--json", os.fsencode(target)])
    try:
        doc = json.loads(out)
        files = {e.get("file") for e in doc.get("invalid", [])}
        if not STATUS_NAMES <= files:
            errors.append("modelctl ls --json %s lists invalid %s, expected "
                          "%s among them" % (label, files, STATUS_NAMES))
    except ValueError as e:
        errors.append("modelctl ls --json %s (exit %d) printed invalid "
                      "JSON (%s): %r %r" % (label, rc, e, out, err))


def check_file_cmds(errors, store):
    for raw, escaped in ((os.fsencode(EVIL), EVIL_ESCAPED),
                         (BADUTF, BADUTF_ESCAPED)):
        path = os.path.join(os.fsencode(store), raw)
        for cmd in ([b"verify", path], [b"inspect", path]):
            label = "modelctl %s %s" % (cmd[0].decode(), escaped)
            rc, out, err = run_ctl(cmd)
            if rc != 1:
                errors.append("%s: exit %d, expected 1" % (label, rc))
            errors.extend(text_problems(label + " stdout", out))
            errors.extend(text_problems(label + " stderr", err))
            both = (out + err).decode("utf-8", "replace")
            if escaped not in both:
                errors.append("%s does not name the file escaped: %r" %
                              (label, both))


def check_log(errors, log):
    lines = log.splitlines()
    forged = [ln for ln in lines if ln.startswith(FORGED) or
              ln.startswith("forged line")]
    if forged:
        errors.append("forged log lines: %r" % forged)
    for want in (EVIL_ESCAPED, BADUTF_ESCAPED):
        if not any(want in ln for ln in lines):
            errors.append("no log line names %r" % want)


def check_status(errors, m):
    try:
        st = m.status()
    except (OSError, ValueError) as e:
        errors.append("/.status: %s" % e)
        return
    files = {e.get("file") for e in st.get("skipped", [])}
    if not STATUS_NAMES <= files:
        errors.append("/.status skipped %s, expected %s among them" %
                      (files, STATUS_NAMES))
    if [mo.get("key") for mo in st.get("models", [])] != ["good"]:
        errors.append("/.status models: %r" % st.get("models"))


def main(work):
    rng = np.random.default_rng(11)
    arrays = [h.Array("a", h.random_array(rng, "float32", (100,)))]
    store = work.dir("store")
    good = os.path.join(store, "good.mfs")
    h.pack(work, good, arrays)
    blob = h.read_file(good)
    for raw in (os.fsencode(EVIL), BADUTF):
        # A bad container: truncated in the middle of its header.
        with open(os.path.join(os.fsencode(store), raw), "wb") as f:
            f.write(blob[:100])

    errors = []
    check_file_cmds(errors, store)
    check_ls(errors, store, "STORE")
    with h.mounted(work, store) as m:
        if not h.load_matches(m.p("good", "a.npy"), arrays[0]):
            errors.append("good/a.npy wrong")
        check_status(errors, m)
        check_ls(errors, m.path, "MNT")
        m.check_alive()
        log = m.log()
    check_log(errors, log)
    if errors:
        errors.append("daemon log:\n" + log)
    h.check(not errors, "%d problems:\n  %s" % (len(errors),
                                                 "\n  ".join(errors)))
    shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    h.run(main)
