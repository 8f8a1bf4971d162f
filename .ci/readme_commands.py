"""Print the newcomer commands of README.md, one per line, for .ci/run to execute.

They are the lines of the fenced ```bash blocks between the markers <!-- ci:begin --> and
<!-- ci:end -->, so CI runs exactly what the README tells a newcomer to run.
"""

import re
import sys
from pathlib import Path

text = Path(sys.argv[1]).read_text(encoding="utf-8")
section = re.search(r"<!-- ci:begin -->(.*?)<!-- ci:end -->", text, re.S)
if section is None:
    sys.exit("README.md has no <!-- ci:begin --> ... <!-- ci:end --> section")
blocks = re.findall(r"```bash\n(.*?)```", section.group(1), re.S)
commands = [line for block in blocks for line in block.splitlines() if line.strip()]
if len(commands) < 2:
    sys.exit(f"README.md's ci section must hold the set-up and test commands, found {commands}")
print("\n".join(commands))
