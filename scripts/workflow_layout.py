"""Lay out any UI workflow (version 0.4) left to right, at the sizes ComfyUI's frontend renders.

Sizes follow the frontend's LGraphNode.computeSize (comfyui-frontend-package 1.27): a title bar of 30 px
above `pos`, one 20 px row per socket row (max of linked inputs and outputs, at least one), 24 px per
widget (a seed adds its control_after_generate combo; an image upload adds a button), 54 px for a
multiline text box, plus 8 px under the widgets and 6 px of padding. The frontend grows a node to at least
that size, so the stored size is never smaller. Widths are estimated from the title and widget labels
(generously: text is proportional). tests/test_browser.py checks the result in the real frontend.

Layout: columns by dependency (each node one column left of its first consumer, so links stay short),
nodes ordered inside each column by the barycentre of their neighbours (fewer crossings), each node
placed level with the sources it reads from; frontend-only notes go on top.
"""
TITLE_HEIGHT = 30
ROW = 20
WIDGET = 24
MULTILINE = 54
COLUMN_GAP = 70
ROW_GAP = 40        # between one node's bottom and the next node's title bar
MIN_WIDTH = 270
NOTE_TYPES = ("Note", "MarkdownNote")
# room for what a node shows after a run or an upload: image previews, text
DISPLAY_HEIGHT = {"SaveImage": 280, "PreviewImage": 280, "LoadImage": 330, "PreviewAny": 110}


def widget_heights(node_class):
    """Heights of the widgets the frontend draws for a node class, in order."""
    heights = []
    for section in ("required", "optional"):
        for name, spec in node_class.INPUT_TYPES().get(section, {}).items():
            input_type = spec[0]
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if isinstance(input_type, (list, tuple)) or input_type in ("INT", "FLOAT", "BOOLEAN", "COMBO"):
                heights.append(WIDGET)
                if options.get("control_after_generate") or (input_type == "INT" and name in ("seed", "noise_seed")):
                    heights.append(WIDGET)
                if options.get("image_upload"):
                    heights.append(WIDGET)
            elif input_type == "STRING":
                heights.append(MULTILINE if options.get("multiline") else WIDGET)
    return heights


def text_width(text, char=8.5):
    return len(str(text)) * char


def frontend_size(node, node_class, display_name=None):
    """[width, height] of a UI node (its body, without the title bar) as the frontend renders it at least."""
    socket_inputs = _socket_names(node_class)
    rows = max(1, len(socket_inputs), len(node.get("outputs", [])))
    widgets = widget_heights(node_class) if node_class is not None else [MULTILINE]
    height = rows * ROW + sum(widgets) + (8 if widgets else 0) + 6
    height = max(height, DISPLAY_HEIGHT.get(node["type"], 0))
    titles = [node.get("title") or node["type"], display_name or ""]
    labels = [text_width(max(titles, key=len), 8.2) + 24]
    names = socket_inputs
    outs = [s["name"] for s in node.get("outputs", [])]
    labels.append(text_width(max(names, key=len, default="")) + text_width(max(outs, key=len, default="")) + 60)
    for name, value in zip(_widget_names(node_class), node.get("widgets_values") or []):
        labels.append(text_width(name, 7.5) + text_width(value if not isinstance(value, float) else f"{value:.3f}", 7.5) + 70)
    return [int(round(max(MIN_WIDTH, *labels))), int(height)]


def _socket_names(node_class):
    if node_class is None:
        return []
    return [name for section in ("required", "optional")
            for name, spec in node_class.INPUT_TYPES().get(section, {}).items()
            if not (isinstance(spec[0], (list, tuple)) or spec[0] in ("INT", "FLOAT", "BOOLEAN", "COMBO", "STRING"))]


def _widget_names(node_class):
    if node_class is None:
        return []
    names = []
    for section in ("required", "optional"):
        for name, spec in node_class.INPUT_TYPES().get(section, {}).items():
            input_type = spec[0]
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if isinstance(input_type, (list, tuple)) or input_type in ("INT", "FLOAT", "BOOLEAN", "COMBO", "STRING"):
                names.append(name)
                if options.get("control_after_generate") or (input_type == "INT" and name in ("seed", "noise_seed")):
                    names.append("control_after_generate")
    return names


def note_size(text, width=460):
    chars_per_line = width // 6
    lines = sum(max(1, -(-len(line) // chars_per_line)) for line in text.splitlines())
    return [width, 30 + 17 * lines]


def lay_out(workflow, origin=(40, 60), max_column_height=None, notes_below=False):
    """Set pos of every node of a UI workflow (in place) and return it. Sizes must already be set. A column
    taller than max_column_height (canvas units) wraps into several side by side (same depth: no links
    between them), so a graph with many parallel nodes stays wide rather than tall. Notes go in a row on
    top, or with `notes_below` under the nodes they would cover at the left (the graph starts higher)."""
    nodes = {node["id"]: node for node in workflow["nodes"]}
    notes = [node for node in workflow["nodes"] if node["type"] in NOTE_TYPES]
    graph = [node_id for node_id in nodes if nodes[node_id]["type"] not in NOTE_TYPES]
    sources = {node_id: [] for node_id in graph}
    consumers = {node_id: [] for node_id in graph}
    for _, source, _, target, _, _ in workflow["links"]:
        sources[target].append(source)
        consumers[source].append(target)

    column = {}

    def depth(node_id, seen=()):
        if node_id not in column:
            if node_id in seen:
                raise ValueError(f"the graph has a cycle through node {node_id}")
            column[node_id] = 1 + max((depth(s, seen + (node_id,)) for s in sources[node_id]), default=-1)
        return column[node_id]
    for node_id in graph:
        depth(node_id)
    for node_id in sorted(graph, key=lambda n: -column[n]):  # sources move right, next to their first consumer
        if consumers[node_id]:
            column[node_id] = min(column[c] for c in consumers[node_id]) - 1

    columns = [sorted((n for n in graph if column[n] == c), key=lambda n: graph.index(n))
               for c in range(max(column.values()) + 1)]
    columns = [col for col in columns if col]
    order = {}

    def reorder(cols, neighbours):
        for col in cols:
            for i, n in enumerate(col):
                order.setdefault(n, i)
            def key(n):
                linked = [order[m] for m in neighbours[n] if m in order and column[m] != column[n]]
                return (sum(linked) / len(linked)) if linked else order[n]
            col.sort(key=key)
            for i, n in enumerate(col):
                order[n] = i
    for _ in range(4):
        reorder(columns, sources)
        reorder(list(reversed(columns)), consumers)
    reorder(columns, sources)
    if max_column_height:
        columns = [part for col in columns for part in _wrapped(col, nodes, max_column_height)]

    x, top = origin
    if notes and not notes_below:
        note_x = x
        for note in notes:
            note["pos"] = [note_x, top]
            note_x += note["size"][0] + COLUMN_GAP
        top += max(note["size"][1] for note in notes) + TITLE_HEIGHT + ROW_GAP
    centre = {}
    for col in columns:
        width = max(nodes[n]["size"][0] for n in col)
        bottom = top - TITLE_HEIGHT - ROW_GAP
        for n in col:
            height = nodes[n]["size"][1]
            linked = [centre[s] for s in sources[n] if s in centre]
            wanted = (sum(linked) / len(linked) - height / 2) if linked else top
            y = max(top, wanted, bottom + ROW_GAP + TITLE_HEIGHT)
            nodes[n]["pos"] = [int(x), int(round(y))]
            centre[n] = y + height / 2
            bottom = y + height
        x += width + COLUMN_GAP
    if notes and notes_below:
        note_x = origin[0]
        for note in notes:
            covered = [nodes[n] for n in graph if nodes[n]["pos"][0] < note_x + note["size"][0]]
            note["pos"] = [note_x, max(n["pos"][1] + n["size"][1] for n in covered) + ROW_GAP + TITLE_HEIGHT]
            note_x += note["size"][0] + COLUMN_GAP
    return workflow


def _wrapped(col, nodes, max_height):
    """A column's nodes, in order, packed greedily into sub-columns no taller than max_height; nodes taller
    than half of it (a large preview) come last, each in a sub-column of its own."""
    large = [n for n in col if nodes[n]["size"][1] > max_height / 2]
    parts, height = [[]], 0
    for n in [n for n in col if n not in large] + large:
        if n in large and parts[-1]:
            parts.append([])
            height = 0
        needed = nodes[n]["size"][1] + TITLE_HEIGHT + ROW_GAP
        if parts[-1] and height + needed > max_height:
            parts.append([])
            height = 0
        parts[-1].append(n)
        height += needed
    return parts


def overlaps(boxes):
    """Pairs of (id, [x, y, w, h]) boxes that intersect."""
    found = []
    for i, (a, (ax, ay, aw, ah)) in enumerate(boxes):
        for b, (bx, by, bw, bh) in boxes[i + 1:]:
            if ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah:
                found.append((a, b))
    return found


def rendered_boxes(workflow):
    """Each node's box including its title bar, from the stored pos and size."""
    return [(node["id"], [node["pos"][0], node["pos"][1] - TITLE_HEIGHT, node["size"][0], node["size"][1] + TITLE_HEIGHT])
            for node in workflow["nodes"]]
