"""Labels for File > Open Recent: numbered, and with enough of each path to tell two `model.py` apart."""

from __future__ import annotations

from pathlib import Path


def _folder(path: Path, depth: int) -> str:
    """The last `depth` folders above `path`, home written as ~ when the whole path is shown."""
    parents = path.parent.parts
    if depth >= len(parents):
        try:
            return "~/" + str(path.parent.relative_to(Path.home()))
        except ValueError:
            return str(path.parent)
    return "…/" + "/".join(parents[-depth:])


def recent_labels(paths: list[Path]) -> list[str]:
    """'&1 model.py  (…/project_a)' per path: folders added until paths of the same name differ, & numbers 1-9, 0."""
    depths = [1] * len(paths)
    while True:
        folders = [_folder(p, d) for p, d in zip(paths, depths)]
        clash = [
            i
            for i, p in enumerate(paths)
            if any(j != i and paths[j].name == p.name and folders[j] == folders[i] for j in range(len(paths)))
        ]
        grown = [i for i in clash if depths[i] < len(paths[i].parent.parts)]
        if not grown:
            break
        for i in grown:
            depths[i] += 1
    labels = []
    for i, (path, folder) in enumerate(zip(paths, folders)):
        number = f"&{(i + 1) % 10} " if i < 10 else ""
        labels.append(f"{number}{path.name.replace('&', '&&')}   ({folder.replace('&', '&&')})")
    return labels
