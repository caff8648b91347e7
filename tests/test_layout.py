"""The floors of the package: a module imports only from its own floor or
those below, so a reader can go bottom to top (the package docstring's map).
"""
import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'cifar10_tutorial')

# What each library part may import from the package (besides itself).
TUTORIAL_LIBRARY = ('cifar10', 'cifar10_input')
MAY_IMPORT = {
    'core': ('core',),
    'cifar10_input': ('core',),
    'cifar10': ('core', 'cifar10_input'),
    'engine': ('core', 'engine') + TUTORIAL_LIBRARY,
    'cluster': ('core', 'engine', 'cluster') + TUTORIAL_LIBRARY,
    'own_images': ('core', 'engine', 'own_images') + TUTORIAL_LIBRARY,
    'tools': ('core', 'engine', 'tools') + TUTORIAL_LIBRARY,
    'shell': ('core', 'shell'),   # the ground floor only
    '__init__': (),
}
# The tutorial's programs are libraries' callers too: no program imports
# another (a program is a module run with `python -m`).
FRONT_PROGRAMS = ('cifar10_train', 'cifar10_multi_gpu_train', 'cifar10_eval')


def _modules():
  for folder, _, files in os.walk(PACKAGE):
    for name in files:
      if name.endswith('.py'):
        path = os.path.join(folder, name)
        yield os.path.relpath(path, PACKAGE)[:-3].replace(os.sep, '.'), path


def _imports(path):
  """The package's modules that a file imports, as 'engine.loop' or
  'cifar10'."""
  with open(path) as f:
    tree = ast.parse(f.read())
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module and (
        node.module == 'cifar10_tutorial' or
        node.module.startswith('cifar10_tutorial.')):
      base = node.module[len('cifar10_tutorial.'):]
      found.update((base + '.' if base else '') + a.name for a in node.names)
  return found


def _is_program(path):
  with open(path) as f:
    return "if __name__ == '__main__':" in f.read()


def test_the_tutorials_five_modules_stand_in_front():
  front = sorted(n[:-3] for n in os.listdir(PACKAGE)
                 if n.endswith('.py') and n != '__init__.py')
  assert front == ['cifar10', 'cifar10_eval', 'cifar10_input',
                   'cifar10_multi_gpu_train', 'cifar10_train']


PROGRAMS = sorted(m for m, p in _modules() if _is_program(p))


@pytest.mark.parametrize('module, path', sorted(_modules()))
def test_no_module_imports_from_a_floor_above_it(module, path):
  imported = _imports(path)
  programs = sorted(i for i in imported if i in PROGRAMS)
  assert not programs, '%s imports the programs %s' % (module, programs)
  if _is_program(path):
    return   # a program stands on every library and the shell
  part = module.split('.')[0]
  allowed = MAY_IMPORT[part]
  above = sorted(i for i in imported if i.split('.')[0] not in allowed)
  assert not above, '%s imports %s from above its floor' % (module, above)


def test_the_programs_are_the_ones_users_run():
  # Every program is a make target's or a tool's; a library is never one.
  assert PROGRAMS == sorted(FRONT_PROGRAMS + (
      'cluster.cifar10_dist_train', 'cluster.launch', 'own_images.convert',
      'own_images.predict', 'tools.bench', 'tools.board', 'tools.cifar10_data',
      'tools.measure', 'tools.plot'))


def _pins(lines):
  return {l.split('==')[0].lower().replace('_', '-'): l.split('==')[1]
          for l in (x.strip() for x in lines) if '==' in l and
          not l.startswith('#')}


def test_the_venv_holds_the_locked_versions():
  # make install and make test install with requirements.lock as
  # constraints: every package in the project's .venv is at its version.
  import subprocess
  import sys
  root = os.path.dirname(PACKAGE)
  if os.path.realpath(sys.prefix) != os.path.realpath(
      os.path.join(root, '.venv')):
    pytest.skip('not running in the project\'s .venv (%s)' % sys.prefix)
  with open(os.path.join(root, 'requirements.lock')) as f:
    locked = _pins(f)
  frozen = _pins(subprocess.run([sys.executable, '-m', 'pip', 'freeze'],
                                capture_output=True, text=True).stdout
                 .splitlines())
  assert frozen, 'pip freeze listed nothing'
  differ = {name: (version, locked.get(name))
            for name, version in frozen.items() if locked.get(name) != version}
  assert not differ, differ
  for required in ('requirements.txt', 'requirements-test.txt'):
    with open(os.path.join(root, required)) as f:
      for name, version in _pins(f).items():
        assert locked[name] == version, (required, name)
