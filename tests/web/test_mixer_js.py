"""web/mixer.js must reproduce the Python mixer's shared vectors (tests/vectors/mixer_*.json) to 1e-9."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VECTORS = sorted((ROOT / "tests" / "vectors").glob("mixer_*.json"))
CHECKER = Path(__file__).with_name("check_mixer_vectors.mjs")
TOLERANCE = "1e-9"

pytestmark = pytest.mark.usefixtures("node")  # fails with the reason when node is missing


def run_checker(mode: str, files: list[Path]) -> tuple[int, list[dict]]:
    done = subprocess.run(["node", str(CHECKER), TOLERANCE, mode, *map(str, files)],
                          capture_output=True, text=True, timeout=60)
    reports = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == len(files), done.stderr
    return done.returncode, reports


def test_there_are_vectors_to_check():
    assert {p.name for p in VECTORS} >= {"mixer_step.json", "mixer_sentence_60fps.json", "mixer_overlap_over_one.json",
                                         "mixer_jittery_frames_with_overrides.json"}


@pytest.mark.parametrize("mode", ["mix", "live"])
def test_js_mixer_matches_every_vector(mode):
    code, reports = run_checker(mode, VECTORS)
    bad = [r for r in reports if r["problem_count"]]
    assert code == 0 and not bad, bad
    assert all(r["frames"] == len(json.loads(Path(r["file"]).read_text())["frames"]) for r in reports)


def _perturbed(tmp_path: Path, name: str, change) -> Path:
    document = json.loads((ROOT / "tests" / "vectors" / name).read_text())
    change(document)
    path = tmp_path / f"perturbed_{name}"
    path.write_text(json.dumps(document))
    return path


def test_checker_rejects_a_weight_off_by_1e_8(tmp_path):
    def nudge(document):
        document["frames"][5]["weights"]["AI"] += 1e-8

    code, reports = run_checker("mix", [_perturbed(tmp_path, "mixer_step.json", nudge)])
    assert code == 1 and reports[0]["problem_count"] == 1
    assert "frames[5].weights.AI" in reports[0]["problems"][0]


def test_checker_rejects_a_changed_input(tmp_path):
    # Moving one event by 1 ms must change the JS output away from the stored frames.
    def shift(document):
        document["events"][3]["start_s"] += 0.001

    code, reports = run_checker("mix", [_perturbed(tmp_path, "mixer_sentence_60fps.json", shift)])
    assert code == 1 and reports[0]["problem_count"] > 0


def test_checker_rejects_a_different_time_constant(tmp_path):
    def slower(document):
        document["config"]["time_constant_overrides_s"]["MBP"] = 0.021

    code, reports = run_checker("live", [_perturbed(tmp_path, "mixer_jittery_frames_with_overrides.json", slower)])
    assert code == 1 and any("MBP" in p for p in reports[0]["problems"])


def test_js_defaults_and_constants_are_the_python_ones():
    from photoavatar import spring, visemes
    from photoavatar.animate import mixer

    # Each constant from the module that owns it; a renamed or removed constant fails here (no filtering).
    owners = {"RISE_63": spring, "LOUDNESS_FLOOR_DB": mixer, "LOUDNESS_RANGE_DB": mixer, "PROSODY_HOLD_S": mixer,
              "NOD_TIME_S": mixer, "BROW_TIME_S": mixer, "BROW_MIN_ACCENT": mixer, "BUMP_HORIZON": mixer,
              "REST": visemes, "VISEMES": visemes}
    names = list(owners)
    script = ("const m = await import(process.argv[1]); console.log(JSON.stringify({config: new m.MixerConfig().toJson(), "
              "empty: m.MixerConfig.fromJson({}).toJson(), " + ", ".join(f"{n}: m.{n}" for n in names) + "}));")
    done = subprocess.run(["node", "--input-type=module", "-e", script, "--", str(ROOT / "photoavatar" / "web" / "mixer.js")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    js = json.loads(done.stdout)
    assert js["config"] == mixer.MixerConfig().to_json() == js["empty"]
    assert js["config"]["time_constant_s"] == mixer.MixerConfig.from_json({}).time_constant_s
    python = {name: getattr(owner, name) for name, owner in owners.items()}
    python["VISEMES"] = list(python["VISEMES"])
    missing = [name for name in names if name not in js]
    assert not missing, f"web/mixer.js exports no {missing}: renamed on one side only?"
    assert {name: js[name] for name in names} == python
