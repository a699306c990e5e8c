"""MkDocs hook: nav entries for pages that other branches add are kept only once the page exists.

Only the pages listed in OPTIONAL_PAGES may be missing; any other nav entry without its file still
fails `mkdocs build --strict`, so a typo in the nav cannot hide here.
"""

import os

OPTIONAL_PAGES = {
    "architecture.md",
    "predictor-environment.md",
    "production.md",
    "project-files.md",
    "traffic-splitter.md",
    "migrating-from-cortex.md",
    "security.md",
}


def _prune(items, docs_dir):
    kept = []
    for item in items:
        title, value = next(iter(item.items())) if isinstance(item, dict) else (None, item)
        if isinstance(value, list):
            value = _prune(value, docs_dir)
            if value:
                kept.append({title: value})
            continue
        if value in OPTIONAL_PAGES and not os.path.isfile(os.path.join(docs_dir, value)):
            continue
        kept.append(item)
    return kept


def on_config(config):
    if config.nav:
        config.nav = _prune(config.nav, config.docs_dir)
    return config
