"""The documented `python -m experiments.*` command lines use real flags and config keys.

Every command line in the README, experiments/REPRODUCE.md and docs/ (fenced bash blocks, with
their shell variables expanded, and inline code spans) is parsed; each `--flag` must be a flag of
that command (a renamed flag fails here), each `--config=file[:args]` must load, and each
`--config.a.b=v` must be a key of that config. Every command must have the docstring and its
flags the help texts that `--help` shows.
The flags are read in one subprocess, which imports each command afresh (absl's flags are
process-global, and several commands define the same names).
"""
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", REPO / "experiments" / "REPRODUCE.md", *sorted(
    (REPO / "docs").glob("*.md"))]
COMMAND = re.compile(r"-m\s+(experiments(?:\.\w+)+)(.*)")

# Imports each command module in turn; prints {module: {flag: help}} and the dotted keys of
# each requested config. argv: JSON list of modules, JSON list of "file[:args]" configs.
_DUMP = r"""
import importlib, json, sys
from absl import flags
import ml_collections
modules, configs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
base = set(flags.FLAGS)
out = {"flags": {}, "own": {}, "configs": {}}
for name in modules:
  module = importlib.import_module(name)
  assert callable(getattr(module, "main", None)), f"{name} has no main()"
  assert len((module.__doc__ or "").strip()) > 40, f"{name}: no docstring for --help to show"
  out["flags"][name] = {f: flags.FLAGS[f].help or "" for f in flags.FLAGS}
  out["flags"][name].update({"no" + f: "" for f in flags.FLAGS
                             if isinstance(flags.FLAGS[f], flags.BooleanFlag)})
  by_module = flags.FLAGS.flags_by_module_dict()
  out["own"][name] = {f.name: f.help or "" for m, fs in by_module.items()
                      if m.startswith("experiments") for f in fs}
  for f in set(flags.FLAGS) - base:
    delattr(flags.FLAGS, f)
  for m in [m for m in sys.modules if m == "experiments" or m.startswith("experiments.")]:
    del sys.modules[m]

def keys(c, prefix=""):
  for k, v in c.items():
    yield prefix + k
    if isinstance(v, (ml_collections.ConfigDict, ml_collections.FrozenConfigDict)):
      yield from keys(v, prefix + k + ".")

for spec in configs:
  path, _, arg = spec.partition(":")
  module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
  out["configs"][spec] = sorted(keys(module.get_config(arg or None)))
print(json.dumps(out))
"""


_ENV = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | {"JAX_PLATFORMS": "cpu"}


def _fenced_commands(text):
  """Command strings of the bash blocks, continuation lines joined and variables expanded."""
  commands, variables = [], {}
  for block in re.findall(r"```bash\n(.*?)```", text, re.S):
    for line in block.replace("\\\n", " ").splitlines():
      line = _expand(line.split(" #")[0].strip(), variables)
      if line.startswith("#") or not line:
        continue
      words = shlex.split(line)
      if all(re.fullmatch(r"\w+=.*", w) for w in words):
        variables.update(w.split("=", 1) for w in words)
      else:
        commands.append(line)
  return commands, variables


def _expand(line, variables):
  return re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m.group(1), m.group(0)), line)


def _documented():
  """[(doc, module, [flag words])], [(doc, flag word)] of inline spans outside commands."""
  uses, loose = [], []
  for doc in DOCS:
    text = doc.read_text()
    commands, variables = _fenced_commands(text)
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    spans = [" ".join(s.split()) for s in re.findall(r"`([^`]+)`", prose)]
    commands += [_expand(s, variables) for s in spans if COMMAND.search(s)]
    loose += [(doc.name, w) for s in spans if s.startswith("--") for w in s.split()]
    for command in commands:
      for module, rest in COMMAND.findall(command):
        words = []
        for word in _shell_words(rest):
          if word in ("&&", "||", ";", "|"):  # the command ends here
            break
          words.append(word)
        words = [w for w in words if w.startswith("--")]
        uses.append((doc.name, module, words))
  return uses, loose


def _shell_words(line):
  """Shell words of `line`, with the operators (&&, ;, |) outside quotes as words of their own."""
  lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
  lexer.whitespace_split = True
  return list(lexer)


def _name(word):
  return word[2:].split("=", 1)[0]


def test_documented_flags_and_config_keys_exist():
  uses, loose = _documented()
  assert uses, "no documented command found"
  modules = sorted({module for _, module, _ in uses})
  configs = sorted({w.split("=", 1)[1] for _, _, words in uses for w in words
                    if w.startswith("--config=")} | {"experiments/configs/synthetic.py"})
  result = subprocess.run([sys.executable, "-c", _DUMP, json.dumps(modules), json.dumps(configs)],
                          cwd=REPO, capture_output=True, text=True, check=False,
                          env=_ENV)
  assert result.returncode == 0, result.stderr[-3000:]
  dump = json.loads(result.stdout.splitlines()[-1])
  every_key = set().union(*dump["configs"].values())

  wrong = []
  for doc, module, words in uses:
    config = next((w.split("=", 1)[1] for w in words if w.startswith("--config=")), None)
    for word in words:
      name = _name(word)
      if name.startswith("config."):
        allowed = dump["configs"][config] if config else every_key
        if name[len("config."):] not in allowed:
          wrong.append(f"{doc}: {module} {word}: no such config key")
      elif name not in dump["flags"][module]:
        wrong.append(f"{doc}: {module} {word}: no such flag")
  every_flag = set().union(*dump["flags"].values())
  for doc, word in loose:
    name = _name(word)
    known = every_key if name.startswith("config.") else every_flag
    if name.removeprefix("config.") not in known:
      wrong.append(f"{doc}: {word}: no such flag or config key")
  assert not wrong, "\n".join(wrong)


def test_every_command_explains_its_flags():
  modules = sorted(
      ".".join(p.relative_to(REPO).with_suffix("").parts)
      for p in [*REPO.glob("experiments/*.py"), *REPO.glob("experiments/benchmarks/*.py")]
      if "app.run(" in p.read_text())
  assert "experiments.train" in modules and "experiments.benchmarks.train_step" in modules
  result = subprocess.run([sys.executable, "-c", _DUMP, json.dumps(modules), "[]"],
                          cwd=REPO, capture_output=True, text=True, check=False,
                          env=_ENV)
  assert result.returncode == 0, result.stderr[-3000:]
  own = json.loads(result.stdout.splitlines()[-1])["own"]
  terse = [f"{m} --{f}: {h!r}" for m in modules for f, h in own[m].items() if len(h) < 12]
  assert not terse, "flags without a useful help text:\n" + "\n".join(terse)
