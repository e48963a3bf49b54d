"""Every node of the pack documents itself in the frontend: a DESCRIPTION, a tooltip on every input
(widgets and sockets) and an OUTPUT_TOOLTIPS entry for every output, all in plain words: the paper's
vocabulary only with an explanation, and a cited paper named."""
import re


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


# Users are artists first: a tooltip says what the knob does to the picture, not the paper's notation.
# Each term below may appear in a node's DESCRIPTION or tooltips only when the same text also carries one of
# its plain explanations (an empty tuple: never). Option values (fm_square, tweedie, ode, ...) stay as they are;
# the words around them explain them. "paper" / "authors" must name the paper (its first author, "et al.").
JARGON = {
    r"jacobian|\bjvp|\bvjp": (),                         # say what it costs (time, memory) instead
    r"\bautograd\b": (),
    r"\bproxy\b": (),                                     # DInG's "proxy draw"
    r"\bproximal\b": (),                                  # (the widget name proximal_weight is no match)
    r"\bposterior\b": (),                                 # say "the exact answer" / "plausible results"
    r"\beta\b|η": (),                                     # (eta_schedule / eta_scale as names are no match)
    r"\bsigma\b|σ": (),
    r"\bmu\b|μ": (),
    r"\by\b|\|\|": (),                                    # the measurement y, norms ||A||
    r"relative residual|regularis|regulariz": (),
    r"\bt\*": ("warm start",),                            # Spin's starting level, named in its info text
    r"\btweedie\b": ("one-shot clean-up",),
    r"\bode\b": ("short sampling run",),
    r"\bpurif(y|ied|ies|ication)\b": ("clean",),         # DCDP's purification: the model cleans the image up
    r"\bcg\b|conjugate.gradient": ("exact solver",),
    r"\bpaper\b|\bauthors\b": ("et al.",),                 # a cited paper is named
}


def node_texts(node_class):
    """(where, text) for the DESCRIPTION, every input tooltip and every output tooltip of a node."""
    texts = [("DESCRIPTION", str(getattr(node_class, "DESCRIPTION", "") or ""))]
    for section, specs in node_class.INPUT_TYPES().items():
        if section == "hidden":
            continue
        for name, spec in specs.items():
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            texts.append((f"input {name}", str(options.get("tooltip", ""))))
    names = getattr(node_class, "RETURN_NAMES", None) or node_class.RETURN_TYPES
    texts += [(f"output {name}", str(tooltip or ""))
              for name, tooltip in zip(names, getattr(node_class, "OUTPUT_TOOLTIPS", ()) or ())]
    return texts


def unexplained_jargon(text):
    found = []
    for pattern, explanations in JARGON.items():
        match = re.search(pattern, text, re.IGNORECASE)
        if match and not any(phrase.lower() in text.lower() for phrase in explanations):
            found.append(match.group(0))
    return found


def test_jargon_checker_catches_bare_terms_and_accepts_explained_ones():
    assert unexplained_jargon("variant: ding: 2 network calls per step (exact proxy).") == ["proxy"]
    assert unexplained_jargon("Multiplier on eta (clamped so eta <= sigma).") == ["eta", "sigma"]
    assert unexplained_jargon("tweedie: 1 network call per round.") == ["tweedie"]
    assert unexplained_jargon("fm_square is the paper's default.") == ["paper"]
    assert unexplained_jargon("tweedie: one-shot clean-up, 1 network call per round.") == []
    assert unexplained_jargon("the DInG paper's choice (Moufad et al. 2026); eta_scale multiplies it.") == []


def test_tooltips_speak_plain_words(engine):
    """No DESCRIPTION or tooltip uses the internal vocabulary (JARGON) without a plain explanation."""
    bare = {f"{node_id} {where}": terms for node_id, node_class in pack_nodes(engine)
            for where, text in node_texts(node_class) if (terms := unexplained_jargon(text))}
    assert bare == {}, "\n".join(f"{where}: {', '.join(terms)} unexplained" for where, terms in bare.items())
