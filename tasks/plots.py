"""`dvc plots show` that renders without internet: the Vega libraries inlined in the page.

    python -m tasks.plots [DVC PLOTS SHOW ARGS ...]     # -> dvc_plots/index.html

Plain `dvc plots show` writes dvc_plots/index.html loading Vega, Vega-Lite and Vega-Embed from
a CDN, so offline only the image plots (the confusion matrix) appear and every curve is an
empty box, silently. This runs the same command with an HTML template (`--html-template`)
whose <script> holds those libraries (vl-convert-python's bundle, ~1 MB, no network), so the
page draws every plot anywhere. Output: dvc_plots/index.html (or `-o DIR`). Exit code: dvc's.
No params section.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

# DVC fills {plot_divs}; its {scripts} placeholder (the CDN tags) is deliberately absent.
TEMPLATE = """<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>DVC plots</title>
  <script>{bundle}</script>
  <style>table {{ border-spacing: 15px; }}</style>
</head>
<body>
{{plot_divs}}
</body>
</html>
"""


def offline_template() -> str:
    """The page template with Vega, Vega-Lite and Vega-Embed inlined (globals `vegaEmbed`...)."""
    import vl_convert

    return TEMPLATE.format(bundle=vl_convert.javascript_bundle().replace("</script", "<\\/script"))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if {"-h", "--help"} & set(args):
        print(__doc__.strip())
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "offline.html"
        template.write_text(offline_template(), encoding="utf-8")
        return subprocess.call([sys.executable, "-m", "dvc", "plots", "show",
                                "--html-template", str(template), *args])


if __name__ == "__main__":
    sys.exit(main())
