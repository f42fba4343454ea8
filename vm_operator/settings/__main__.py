"""``python -m vm_operator.settings``: the README's tables of settings, to paste in place."""

from vm_operator.settings.docs import readme_tables

for heading, table in readme_tables().items():
    print(f"## {heading}\n\n{table}\n")
