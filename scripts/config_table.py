"""Print the README's configuration table from services.common.config.VARIABLES."""

from services.common.config import VARIABLES

print("| Variable | Default | Service | Meaning |")
print("|---|---|---|---|")
for v in VARIABLES:
    if v.default is None:
        default = f"required {v.required_when}".strip() if v.required_when else "required"
    else:
        default = f"`{v.default}`" if v.default else "(empty)"
    secret = " Secret." if v.secret else ""
    print(f"| `{v.name}` | {default} | {v.scope} | {v.help}{secret} |")
