"""Every node of the pack documents itself in the frontend: a DESCRIPTION, a tooltip on every input
(widgets and sockets) and an OUTPUT_TOOLTIPS entry for every output."""

def pack_nodes(engine):
    return sorted(engine.pack.NODE_CLASS_MAPPINGS.items())

def missing_docs(node_class):
    problems = []
    if not str(getattr(node_class, "DESCRIPTION", "") or "").strip():
        problems.append("DESCRIPTION")
    for section, specs in node_class.INPUT_TYPES().items():
        if section == "hidden":
            continue
        for name, spec in specs.items():
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if not str(options.get("tooltip", "")).strip():
                problems.append(f"input {name}")
    tooltips = tuple(getattr(node_class, "OUTPUT_TOOLTIPS", ()) or ())
    names = getattr(node_class, "RETURN_NAMES", None) or node_class.RETURN_TYPES
    if len(tooltips) != len(node_class.RETURN_TYPES):
        problems.append(f"OUTPUT_TOOLTIPS has {len(tooltips)} entries for {len(node_class.RETURN_TYPES)} outputs")
    for name, tooltip in zip(names, tooltips):
        if not str(tooltip or "").strip():
            problems.append(f"output {name}")
    return problems

def test_the_pack_registers_nodes(engine):
    assert len(pack_nodes(engine)) >= 10

def test_every_node_input_and_output_is_documented(engine):
    undocumented = {node_id: problems for node_id, node_class in pack_nodes(engine)
                    if (problems := missing_docs(node_class))}
    assert undocumented == {}, "\n".join(f"{node_id}: no {', '.join(p)}" for node_id, p in undocumented.items())
