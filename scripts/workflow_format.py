"""ComfyUI's two workflow formats (comfyui.md §5): the UI graph the frontend saves (version 0.4:
nodes, links, widgets_values) and the API prompt the executor runs ({id: {class_type, inputs}}).

Widgets are the inputs whose type is a primitive or a combo list, stored in INPUT_TYPES order;
an INT with control_after_generate (or a core seed) is followed by its control value.
"""
from workflow_layout import frontend_size, lay_out, note_size

FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
PRIMITIVES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
CONTROL_VALUES = {"fixed", "randomize", "increment", "decrement"}


def input_specs(node_class):
    """[(name, type, options)] in widget order: required, then optional."""
    declared = node_class.INPUT_TYPES()
    specs = []
    for section in ("required", "optional"):
        for name, spec in declared.get(section, {}).items():
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            specs.append((name, spec[0], options))
    return specs


def is_widget(input_type):
    return isinstance(input_type, (list, tuple)) or input_type in PRIMITIVES


def has_control(name, options):
    return bool(options.get("control_after_generate")) or name in ("seed", "noise_seed")


def ui_to_api(workflow, node_mappings):
    """Convert a UI workflow into an API prompt (muted/bypassed and frontend-only nodes dropped)."""
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] in FRONTEND_ONLY or node.get("mode", 0) in (2, 4):
            continue
        if node["type"] not in node_mappings:
            raise KeyError(f"node {node['id']}: unknown node type {node['type']!r}")
        inputs = {}
        linked = {}
        for slot in node.get("inputs", []):
            if slot.get("link") is not None:
                link = links[slot["link"]]
                linked[slot["name"]] = [str(link[1]), link[2]]
        values = list(node.get("widgets_values") or [])
        for name, input_type, options in input_specs(node_mappings[node["type"]]):
            if name in linked:
                inputs[name] = linked[name]
                if is_widget(input_type) and values:  # a widget converted to an input keeps its slot
                    values.pop(0)
            elif is_widget(input_type) and values:
                inputs[name] = values.pop(0)
                if has_control(name, options) and values and values[0] in CONTROL_VALUES:
                    values.pop(0)
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs,
                                   "_meta": {"title": node.get("title", node["type"])}}
    return prompt


def widget_value(node, name):
    """A prompt's value for one widget. Every widget needs one: a skipped widget would shift each later value
    into the wrong widget, and a widget added to a node must reach the example graphs."""
    if name not in node["inputs"]:
        raise ValueError(f"{node['class_type']}: the graph gives no value for its widget {name!r}")
    return node["inputs"][name]


def api_to_ui(prompt, node_mappings, notes=(), properties=None, display_names=None, sizes=None,
              max_column_height=None, notes_below=False):
    """An API prompt as a UI workflow (used to write the example workflows): nodes at the sizes the
    frontend renders (or `sizes` ({node_id: [w, h]}) where given, e.g. a large image preview), laid out left
    to right (workflow_layout.py, columns wrapped at max_column_height), `notes` (markdown texts) as
    MarkdownNote nodes on top (or under the first columns, `notes_below`), `properties` ({node_id: {...}}) merged into the nodes' properties,
    `display_names` ({class_type: title}) the default titles the frontend shows (they set node widths)."""
    nodes, links = [], []
    consumers = {}
    for node_id, node in prompt.items():
        for slot, (name, _, _) in enumerate(_linked_inputs(node, node_mappings)):
            source_id, source_slot = node["inputs"][name]
            consumers.setdefault((source_id, source_slot), []).append((node_id, name))
    link_ids = {}
    for (source_id, source_slot), targets in consumers.items():
        source_class = node_mappings[prompt[source_id]["class_type"]]
        for target_id, name in targets:
            link_id = len(links) + 1
            link_ids[(target_id, name)] = link_id
            target_slot = [n for n, _, _ in _linked_inputs(prompt[target_id], node_mappings)].index(name)
            links.append([link_id, int(source_id), source_slot, int(target_id), target_slot,
                          source_class.RETURN_TYPES[source_slot]])
    for order, (node_id, node) in enumerate(prompt.items()):
        node_class = node_mappings[node["class_type"]]
        widgets = []
        for name, input_type, options in input_specs(node_class):
            if is_widget(input_type):
                value = widget_value(node, name)
                widgets.append(options.get("default", 0) if isinstance(value, list) else value)  # a linked widget keeps its slot
                if has_control(name, options):
                    widgets.append("fixed")
        inputs = []
        for name, input_type, _ in _linked_inputs(node, node_mappings):
            entry = {"name": name, "type": "COMBO" if isinstance(input_type, (list, tuple)) else input_type,
                     "link": link_ids[(node_id, name)]}
            if is_widget(input_type):
                entry["widget"] = {"name": name}
            inputs.append(entry)
        outputs = []
        names = getattr(node_class, "RETURN_NAMES", None) or node_class.RETURN_TYPES
        for slot, output_type in enumerate(node_class.RETURN_TYPES):
            out_links = [link[0] for link in links if link[1] == int(node_id) and link[2] == slot]
            outputs.append({"name": names[slot], "type": output_type, "links": out_links, "slot_index": slot})
        entry = {"id": int(node_id), "type": node["class_type"], "pos": [0, 0], "size": [0, 0], "flags": {},
                 "order": order, "mode": 0, "inputs": inputs, "outputs": outputs,
                 "properties": {"Node name for S&R": node["class_type"], **(properties or {}).get(node_id, {})},
                 "widgets_values": widgets}
        if "_meta" in node:
            entry["title"] = node["_meta"]["title"]
        entry["size"] = (list((sizes or {})[node_id]) if node_id in (sizes or {})
                         else frontend_size(entry, node_class, (display_names or {}).get(node["class_type"])))
        nodes.append(entry)
    next_id = max(int(i) for i in prompt) + 1
    for offset, text in enumerate(notes):
        nodes.append({"id": next_id + offset, "type": "MarkdownNote", "pos": [0, 0], "size": note_size(text),
                      "flags": {}, "order": len(nodes), "mode": 0, "inputs": [], "outputs": [], "properties": {},
                      "widgets_values": [text], "title": "Read me", "color": "#432", "bgcolor": "#653"})
    workflow = {"last_node_id": max(node["id"] for node in nodes), "last_link_id": len(links), "nodes": nodes,
                "links": links, "groups": [], "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}},
                "version": 0.4}
    return lay_out(workflow, max_column_height=max_column_height, notes_below=notes_below)


def _linked_inputs(node, node_mappings):
    return [(name, input_type, options) for name, input_type, options in input_specs(node_mappings[node["class_type"]])
            if isinstance(node["inputs"].get(name), list)]


def static_check(workflow, node_mappings):
    """Problems found without executing: unknown types, links whose types do not match, missing inputs."""
    problems = []
    by_id = {node["id"]: node for node in workflow["nodes"]}
    for link_id, source, source_slot, target, target_slot, link_type in workflow["links"]:
        source_type = node_mappings[by_id[source]["type"]].RETURN_TYPES[source_slot]
        target_input = by_id[target]["inputs"][target_slot]
        expected = dict((n, t) for n, t, _ in input_specs(node_mappings[by_id[target]["type"]]))[target_input["name"]]
        expected = "COMBO" if isinstance(expected, (list, tuple)) else expected
        if not (source_type == expected == link_type or "*" in (source_type, expected)):
            problems.append(f"link {link_id}: {source_type} into {by_id[target]['type']}.{target_input['name']} "
                            f"which expects {expected}")
    for node in workflow["nodes"]:
        if node["type"] in FRONTEND_ONLY:
            continue
        if node["type"] not in node_mappings:
            problems.append(f"node {node['id']}: unknown type {node['type']}")
            continue
        api = ui_to_api({"nodes": [node], "links": workflow["links"]}, node_mappings)[str(node["id"])]
        required = node_mappings[node["type"]].INPUT_TYPES().get("required", {})
        linked_names = {slot["name"] for slot in node.get("inputs", []) if slot.get("link") is not None}
        missing = [name for name in required if name not in api["inputs"] and name not in linked_names]
        if missing:
            problems.append(f"node {node['id']} ({node['type']}): missing required inputs {missing}")
    return problems
