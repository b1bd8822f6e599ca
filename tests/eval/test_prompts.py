"""Label cleanup, templates, prompt ensembles and ReCLAP prompt augmentation."""

import numpy as np
import pytest

from clapkit.eval.prompts import (
    TEMPLATES,
    PromptError,
    class_embeddings,
    clean_label,
    format_prompts,
    resolve_templates,
)
from clapkit.eval.reclap import (
    LanguageModelDescriber,
    OntologyDescriber,
    SoundDescription,
    parse_lines,
    reclap_prompt_sets,
    sample_pairs,
)


def test_clean_label():
    assert clean_label("dog_bark") == "dog bark"
    assert clean_label("Accelerating_and_revving_and_vroom") == "accelerating and revving and vroom"
    assert clean_label("  hip-hop__music ") == "hip-hop music"
    assert clean_label("Dog_bark", lowercase=False) == "Dog bark"


def test_papers_templates():
    assert TEMPLATES["laion"] == ("This is a sound of {}.",)
    assert TEMPLATES["laion-music"] == ("This is a {} song.",)
    assert TEMPLATES["ms-clap"] == ("this is the sound of {}",)
    assert TEMPLATES["ms-clap-predictions"] == ("this is a sound of {}",)


def test_resolve_and_format_templates():
    assert resolve_templates("laion") == ["This is a sound of {}."]
    assert resolve_templates(["laion", "A {} noise.", "laion"]) == ["This is a sound of {}.", "A {} noise."]
    assert len(resolve_templates("ensemble")) == len(TEMPLATES["ensemble"]) > 1
    with pytest.raises(PromptError, match="neither a template set"):
        resolve_templates("laoin")
    assert format_prompts(["dog", "rain"], ["a {}", "the {}!"]) == [["a dog", "the dog!"], ["a rain", "the rain!"]]


def test_class_embedding_is_the_renormalised_mean_of_normalised_prompt_embeddings():
    vectors = {"a": [2.0, 0.0], "b": [0.0, 1.0], "c": [3.0, 4.0]}
    calls = []

    def embed(texts):
        calls.append(list(texts))
        return np.array([vectors[t] for t in texts])

    out = class_embeddings(embed, [["a", "b"], ["c"]])
    assert calls == [["a", "b", "c"]]  # all prompts embedded in one call
    np.testing.assert_allclose(out[0], [1 / np.sqrt(2), 1 / np.sqrt(2)], atol=1e-6)  # mean of (1,0),(0,1)
    np.testing.assert_allclose(out[1], [0.6, 0.8], atol=1e-6)
    with pytest.raises(PromptError):
        class_embeddings(embed, [["a"], []])


def test_ensemble_matches_the_inference_layer(small_model):
    labels = ["dog bark", "rain"]
    templates = resolve_templates("ensemble")
    ours = class_embeddings(small_model.embed_text, format_prompts(labels, templates))
    np.testing.assert_allclose(ours, small_model.label_embeddings(labels, templates), atol=1e-5)


def test_parse_lines():
    text = "1. Sharp and loud\n- short bursts.\n\n* \"Sharp and loud\"\n2) deep rumble\n(3) x"
    assert parse_lines(text, 10) == ["Sharp and loud", "short bursts", "deep rumble", "x"]
    assert parse_lines(text, 2) == ["Sharp and loud", "short bursts"]
    assert parse_lines("high pitched; rhythmic clicks ;  metallic.; high pitched", 5) == [
        "high pitched", "rhythmic clicks", "metallic"]


def test_sample_pairs_is_seeded_by_label_and_spreads_over_traits():
    d = SoundDescription("dog", ("t1", "t2", "t3"), ("s1", "s2", "s3", "s4"))
    pairs = sample_pairs(d, 5)
    assert len(set(pairs)) == 5 and all(p in [(t, s) for t in d.traits for s in d.scenes] for p in pairs)
    assert {t for t, _ in pairs[:3]} == {"t1", "t2", "t3"}  # every trait once before any twice
    assert sample_pairs(d, 5) == pairs  # deterministic
    assert sample_pairs(d, 5, seed=1) != pairs
    assert len(sample_pairs(d, 50)) == 12  # all pairs when fewer than asked


def test_ontology_describer_offline_traits():
    describer = OntologyDescriber()
    traits = describer.traits("dog")
    assert "like bark" in traits and "like howl" in traits  # the ontology's sub-classes of "Dog"
    assert traits[0].startswith("any sounds coming from the familiar domesticated canid")
    assert describer.traits("zzqx unknown") == ("zzqx unknown",)
    prompts = reclap_prompt_sets(["dog", "zzqx unknown"], describer, num_prompts=6)
    assert [len(p) for p in prompts] == [6, 6]
    assert all("dog" in p.lower() for p in prompts[0]) and len(set(prompts[0])) == 6
    assert prompts == reclap_prompt_sets(["dog", "zzqx unknown"], describer, num_prompts=6)


class FakeGenerator:
    """A textgen-style backend: ``generate(prompts) -> answers``; records what it was asked."""

    def __init__(self):
        self.asked = []

    def generate(self, prompts):
        self.asked.append(list(prompts))
        answers = []
        for p in prompts:
            if p.startswith("List") and "acoustic" in p:
                answers.append("sharp; loud; sharp")
            elif p.startswith("List"):
                answers.append("in a park; at home.")
            elif "siren" in p:
                answers.append("")  # an empty answer falls back to a template sentence
            else:
                answers.append(f"Sentence for; {p[:40]}")
        return answers


def test_language_model_describer_two_stages_and_fallbacks():
    generator = FakeGenerator()
    describer = LanguageModelDescriber(generator, num_traits=3, num_scenes=2)
    prompts = reclap_prompt_sets(["dog", "siren"], describer, num_prompts=3)
    questions, requests = generator.asked
    assert len(questions) == 4 and 'sound of "dog"' in questions[0] and 'sound of "siren"' in questions[3]
    assert len(requests) == 6 and all("Reply with the sentence only" in r for r in requests)
    assert [len(p) for p in prompts] == [3, 3]
    assert all(p.startswith("Sentence for; Write") and p.endswith(".") for p in prompts[0])  # kept whole
    assert all("siren" in p.lower() for p in prompts[1])  # fallback frames still name the class
    d = describer.describe(["dog"])[0]
    assert d.traits == ("sharp", "loud") and d.scenes == ("in a park", "at home")


@pytest.fixture
def chat_server():
    """A local OpenAI-compatible chat endpoint on 127.0.0.1 that answers ReCLAP's questions; yields (url, asked)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    asked = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            prompt = body["messages"][-1]["content"]
            asked.append((body["model"], body["messages"][0]["content"], prompt))
            if "acoustic characteristics" in prompt:
                answer = "high-pitched yelps; deep rumbling growl"
            elif "scenes or places" in prompt:
                answer = "in a backyard; on a farm; at a vet"
            else:
                answer = "A dog's sharp yelps echo across the backyard"
            data = json.dumps({"choices": [{"message": {"content": answer}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", asked, server
    finally:
        server.shutdown()
        server.server_close()


def test_chat_endpoint_describer_is_cached_to_a_file(chat_server, tmp_path):
    from clapkit.eval.reclap import SYSTEM_PROMPT, language_model_describer

    url, asked, server = chat_server
    cache = tmp_path / "llm.jsonl"
    describer = language_model_describer("openai", "my-llm", url, str(cache))
    prompts = reclap_prompt_sets(["dog"], describer, num_prompts=3)
    assert prompts == [["A dog's sharp yelps echo across the backyard."] * 3]
    assert len(asked) == 2 + 3 and all(a[0] == "my-llm" and a[1] == SYSTEM_PROMPT for a in asked)
    assert describer.describe(["dog"])[0].traits == ("high-pitched yelps", "deep rumbling growl")
    server.shutdown()  # the endpoint is gone: the same run is answered from the JSONL cache
    again = language_model_describer("openai", "my-llm", url, str(cache))
    assert reclap_prompt_sets(["dog"], again, num_prompts=3) == prompts
    assert len(cache.read_text().splitlines()) == 5


def test_language_model_options_are_checked(sound_folder, capsys):
    from clapkit.cli import main

    code = main(["eval", "zeroshot", "--dataset", "folder", "--root", str(sound_folder), "--model", "m",
                 "--reclap", "openai", "--llm-model", "x"])
    assert code == 2 and "is not an http(s) URL" in capsys.readouterr().err
    code = main(["eval", "zeroshot", "--dataset", "folder", "--root", str(sound_folder), "--model", "m",
                 "--reclap", "local"])
    assert code == 2 and "--llm-model DIR" in capsys.readouterr().err
