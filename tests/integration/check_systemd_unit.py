#!/usr/bin/env python3
"""check_systemd_unit.py UNIT FL_SERVER: systemd-analyze verify on the configured fl_server unit,
its ExecStart pointed at the built fl_server (the installed one need not exist yet). Fails on any
complaint (systemd-analyze exits 0 after most of them: an unknown key, a bad value), and when the
unit lost what fl_server/README.md says it sets. Exit 77 (skip) without systemd-analyze."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

unit, binary = sys.argv[1], sys.argv[2]
tool = shutil.which('systemd-analyze')
if not tool:
    print('no systemd-analyze: skipped')
    sys.exit(77)
text = open(unit).read()
for want in (r'^ExecStart=\S+/fl_server --config /etc/fedrop/fl_server.yaml --resume$',
             r'^ExecReload=/bin/kill -HUP \$MAINPID$', r'^Restart=on-failure$',
             r'^RestartPreventExitStatus=2 3$', r'^LimitNOFILE=1048576$',
             r'^StateDirectory=fedrop$', r'^StateDirectoryMode=0700$', r'^User=fedrop$'):
    if not re.search(want, text, re.M):
        print('%s: no line /%s/' % (unit, want))
        sys.exit(1)
text = re.sub(r'^ExecStart=\S+/fl_server', 'ExecStart=' + os.path.abspath(binary), text,
              flags=re.M)
with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, 'fl_server.service')
    with open(path, 'w') as f:
        f.write(text)
    r = subprocess.run([tool, 'verify', '--man=no', path], capture_output=True, text=True)
    said = (r.stdout + r.stderr).strip()
    if r.returncode != 0 or said:
        print('systemd-analyze verify (exit %d):\n%s' % (r.returncode, said))
        sys.exit(1)
print('ok: systemd-analyze verify has nothing to say about %s' % unit)
