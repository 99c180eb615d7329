"""K-means segments of several request-level features: the fit, the assignment a server
reproduces, merging, the study and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
from click.testing import CliRunner

from simulator.logs import LoggedTraffic
from tests.tuner.conftest import DemoFiles
from tests.worldkit import make_log
from tuner.cli import main
from tuner.picks.export import ExportedWeights
from tuner.segments import (
    ATTR_SEGMENTS,
    CLUSTERS_SCHEMA_VERSION,
    Clusters,
    SegmentTable,
    merge_small,
    request_features,
    segment_picks,
    segment_study_name,
    stored_segmentation,
)

CONTROL = np.array([1.0, 0.5, 0.5])
TASKS = ("click", "conversion", "like")
FEATURES = "feature_user_activity,feature_user_segment"


def _blobs(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated blobs whose second feature is 1,000 times the first's scale:
    unstandardized, distances would see only the second. ``(x [3n, 2], blob [3n])``."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1000.0]])
    spread = np.array([0.05, 50.0])
    x = np.concatenate([c + spread * rng.standard_normal((n, 2)) for c in centres])
    return x, np.repeat(np.arange(3), n)


def test_kmeans_finds_separated_clusters_on_standardized_features() -> None:
    for seed in range(5):
        x, blob = _blobs(seed)
        clusters, notes = Clusters.from_kmeans(("a", "b"), x, 3, seed)
        assert notes == [] and clusters.n_segments == 3
        got = clusters.assign(x)
        # each blob is one segment, and each segment one blob
        for b in range(3):
            assert np.unique(got[blob == b]).size == 1
        assert np.unique(got).size == 3


def test_assignment_is_the_nearest_standardized_centroid_and_is_reproducible() -> None:
    x, _ = _blobs(1)
    clusters, _ = Clusters.from_kmeans(("a", "b"), x, 5, 0)
    fresh = np.random.default_rng(9).uniform([-1, -500], [2, 1500], (400, 2))
    z = (fresh - np.array(clusters.center)) / np.array(clusters.scale)
    brute = [int(np.argmin([np.sum((zi - np.array(c)) ** 2) for c in clusters.centroids]))
             for zi in z]
    assert clusters.assign(fresh).tolist() == brute
    # the same rows in another order, and the stored form, give the same clusters
    perm = np.random.default_rng(2).permutation(len(x))
    assert Clusters.from_kmeans(("a", "b"), x[perm], 5, 0)[0] == clusters
    assert Clusters.from_dict(json.loads(json.dumps(clusters.to_dict()))) == clusters
    # another seed may start elsewhere, the same seed never does
    assert Clusters.from_kmeans(("a", "b"), x, 5, 0)[0] == clusters
    # a tie goes to the lowest segment
    two = Clusters(("a",), (0.0,), (1.0,), ((-1.0,), (1.0,)))
    assert two.assign(np.array([[0.0], [0.5], [-0.5]])).tolist() == [0, 1, 0]


def test_bad_kmeans_inputs_are_refused() -> None:
    x, _ = _blobs(0, 5)
    with pytest.raises(ValueError, match="need an integer >= 1"):
        Clusters.from_kmeans(("a", "b"), x, 0, 0)
    with pytest.raises(ValueError, match="cannot make 20 k-means segments"):
        Clusters.from_kmeans(("a", "b"), x, 20, 0)
    with pytest.raises(ValueError, match=r"need values \[R, 3\]"):
        Clusters.from_kmeans(("a", "b", "c"), x, 2, 0)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="feature 'b' has non-finite values"):
        Clusters.from_kmeans(("a", "b"), bad, 2, 0)
    with pytest.raises(ValueError, match="positive finite scales"):
        Clusters(("a",), (0.0,), (0.0,), ((0.0,),))
    with pytest.raises(ValueError, match=r"centroids \[K, 2\]"):
        Clusters(("a", "b"), (0.0, 0.0), (1.0, 1.0), ((0.0,),))
    with pytest.raises(ValueError, match="repeat"):
        Clusters(("a", "a"), (0.0, 0.0), (1.0, 1.0), ((0.0, 0.0),))


def test_few_distinct_rows_and_constant_features_are_reported() -> None:
    x = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]] * 20)
    clusters, notes = Clusters.from_kmeans(("a", "b"), x, 6, 0)
    assert clusters.n_segments <= 3
    assert any("'b' is constant" in n for n in notes)
    assert any("3 distinct feature rows" in n for n in notes)
    # every segment kept has requests
    assert np.unique(clusters.assign(x)).size == clusters.n_segments


def test_a_small_cluster_is_merged_into_its_nearest_neighbours() -> None:
    x, blob = _blobs(3)
    x = np.concatenate([x, [[0.5, 500.0]] * 4])  # four requests between the blobs
    fitted, _ = Clusters.from_kmeans(("a", "b"), x, 3, 0)
    c = np.array(fitted.centroids)
    stray = (np.array([0.5, 500.0]) - np.array(fitted.center)) / np.array(fitted.scale)
    clusters = Clusters(fitted.features, fitted.center, fitted.scale,
                        tuple(map(tuple, np.vstack([c[:1], [stray], c[1:]]).tolist())))
    assert np.bincount(clusters.assign(x), minlength=4)[1] == 4

    def events(c: Clusters) -> np.ndarray:
        return np.bincount(c.assign(x), minlength=c.n_segments).astype(float)

    merged, notes = merge_small(clusters, events, 10)
    assert merged == fitted and len(notes) == 1
    assert notes[0].startswith("segment 1 (centre a=0.5, b=500) has 4 expected events")
    got = merged.assign(x[:-4])
    for b in range(3):  # the blobs are untouched
        assert np.unique(got[blob == b]).size == 1
    with pytest.raises(ValueError, match="too little traffic"):
        merge_small(clusters, lambda c: np.full(c.n_segments, 1.0), 10)


def _base() -> ExportedWeights:
    return ExportedWeights("multiplicative", TASKS, tuple(CONTROL),
                           {"value": 1.0, "low": 0.9, "high": 1.1, "split": "holdout"},
                           "strategy", "p", None, "d", "m")


def test_the_exported_kmeans_table_reproduces_the_weights_without_python_classes() -> None:
    log = make_log(2, 600)
    names = ("user_activity", "user_segment")
    x = request_features(log.traffic, names)
    clusters, _ = Clusters.from_kmeans(names, x, 4, 0)
    rows = np.array([[1.0, 0.1 * i, 2.0 - 0.3 * i] for i in range(clusters.n_segments)])
    text = json.dumps(SegmentTable(clusters, TASKS, rows, CONTROL).to_dict(_base()))
    data = json.loads(text)
    assert data["schema_version"] == CLUSTERS_SCHEMA_VERSION
    block = data["segments"]
    assert block["kind"] == "kmeans" and block["features"] == list(names)
    fresh = request_features(make_log(7, 300).traffic, names)
    back = SegmentTable.from_dict(data)
    np.testing.assert_array_equal(back.weights_for(fresh), rows[clusters.assign(fresh)])
    # what a server does with the file alone: standardize, nearest centroid, its row
    for value in fresh[:60].tolist():
        z = [(v - c) / s for v, c, s in zip(value, block["center"], block["scale"],
                                            strict=True)]
        d = [sum((a - b) ** 2 for a, b in zip(z, c, strict=True)) for c in block["centroids"]]
        row = block["rows"][d.index(min(d))]
        np.testing.assert_array_equal([row["weights"][t] for t in TASKS],
                                      back.weights_for(np.array([value]))[0])
    assert ExportedWeights.from_json(text).weights == tuple(CONTROL)  # a 1.0 reader
    jsonschema = pytest.importorskip("jsonschema")
    from importlib import resources

    schema = json.loads(resources.files("tuner.picks").joinpath("weights.schema.json")
                        .read_text())
    jsonschema.validate(data, schema)
    broken = json.loads(text)
    del broken["segments"]["centroids"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


@pytest.mark.slow
def test_kmeans_segments_through_the_cli(demo_files: DemoFiles, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    args = [*demo_files.new_study_args(db, rounds=1, population=4), "--segment-by", FEATURES,
            "--segments", "3", "--segment-min-events", "5"]
    quantiles = CliRunner().invoke(main, [*args, "--segment-kind", "quantiles"])
    assert quantiles.exit_code == 1 and "use --segment-kind kmeans" in quantiles.output
    assert not db.exists() or not optuna.get_all_study_names(f"sqlite:///{db}")
    run = CliRunner().invoke(main, args, catch_exceptions=False)
    assert run.exit_code == 0, run.output
    assert "k-means clusters of 'user_activity', 'user_segment'" in run.output
    url = f"sqlite:///{db}"
    parent = optuna.load_study(study_name="s", storage=url)
    clusters = stored_segmentation(parent)
    assert isinstance(clusters, Clusters) and parent.user_attrs[ATTR_SEGMENTS]["kind"] == "kmeans"
    for s in range(clusters.n_segments):
        assert len(optuna.load_study(study_name=segment_study_name("s", s),
                                     storage=url).trials) == 4
    other = CliRunner().invoke(main, ["search", "run", "--storage", str(db), "--study", "s",
                                      "--rounds", "1", "--no-progress", "--segment-by",
                                      "feature_user_activity"])
    assert other.exit_code == 1 and "is segmented by 'user_activity,user_segment'" in \
        other.output
    out = tmp_path / "w.json"
    exp = CliRunner().invoke(main, ["search", "export", "--storage", str(db), "--study", "s",
                                    "--out", str(out)], catch_exceptions=False)
    assert exp.exit_code == 0, exp.output
    assert f"schema {CLUSTERS_SCHEMA_VERSION})" in exp.output
    data = json.loads(out.read_text())
    assert data["schema_version"] == CLUSTERS_SCHEMA_VERSION
    table = SegmentTable.from_dict(data)
    x = request_features(LoggedTraffic.read(demo_files.logs), clusters.features)
    if data["segments"]["personalised"]:
        picks = segment_picks(url, "s", clusters.n_segments)
        np.testing.assert_allclose(table.weights_for(x), picks[clusters.assign(x)])
    else:  # the guard refused: everyone gets the default row
        np.testing.assert_array_equal(table.weights_for(x), np.tile(table.default, (len(x), 1)))
