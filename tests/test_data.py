import tarfile

import pytest

from sentiment_core.data import aclimdb
from sentiment_core.data import splits as data
from sentiment_core.data.aclimdb import write_aclimdb_archive
from sentiment_core.data.sources import load_splits, read_reviews_csv
from sentiment_core.data.splits import Split
from sentiment_core.errors import UserError


@pytest.fixture(scope="module")
def embedded():
    return load_splits("embedded", seed=1234)


def test_embedded_split_is_deduplicated_stratified_70_15_15(embedded):
    sizes = embedded.sizes()
    total = sum(sizes.values())
    assert 24_800 < total < 25_000  # 25,000 minus exact duplicates
    assert any("duplicate" in note for note in embedded.notes)
    assert abs(sizes["train"] / total - 0.70) < 0.001
    assert abs(sizes["valid"] / total - 0.15) < 0.001
    for _, split in embedded.items():
        assert abs(sum(split.labels) / len(split) - 0.5) < 0.01
    texts = [set(split.texts) for _, split in embedded.items()]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])


def test_split_is_deterministic_from_seed(embedded):
    again = load_splits("embedded", seed=1234)
    other = load_splits("embedded", seed=99)
    assert again.digest() == embedded.digest()
    assert other.digest() != embedded.digest()


def test_max_examples_caps_every_split_stratified():
    splits = load_splits("embedded", max_examples=200)
    for _, split in splits.items():
        assert len(split) == 200
        assert sum(split.labels) == 100


def test_rotten_tomatoes_is_short_sentences():
    splits = load_splits("rotten-tomatoes")
    assert 8_400 < sum(splits.sizes().values()) <= 8_530
    assert max(len(t.split()) for t in splits.train.texts) < 100


def test_unknown_source_and_bad_cap():
    with pytest.raises(UserError, match="unknown data source"):
        load_splits("yelp")
    with pytest.raises(UserError, match="max-examples"):
        load_splits("embedded", max_examples=1)


def test_labels_other_than_0_1_are_an_error(tmp_path):
    csv = tmp_path / "reviews.csv"
    csv.write_text("text,label,source\ngood film,1,imdb\nbad film,2,imdb\nmeh,x,imdb\n")
    with pytest.raises(UserError, match="2 row\\(s\\) have labels other than 0/1"):
        read_reviews_csv("imdb", csv)


# --- aclImdb ------------------------------------------------------------------------------


def _official_from_real_reviews(embedded, per_label=30):
    """An aclImdb-layout tree built from real reviews (the real archive is not on this machine)."""
    pos = [t for t, y in zip(embedded.train.texts, embedded.train.labels) if y == 1]
    neg = [t for t, y in zip(embedded.train.texts, embedded.train.labels) if y == 0]
    return {
        "train": {"pos": list(enumerate(pos[:per_label])), "neg": list(enumerate(neg[:per_label]))},
        "test": {"pos": list(enumerate(pos[per_label:2 * per_label])), "neg": list(enumerate(neg[per_label:2 * per_label]))},
    }


def test_aclimdb_archive_gets_the_seed_split(tmp_path, embedded):
    archive = tmp_path / "aclImdb_v1.tar.gz"
    write_aclimdb_archive(archive, _official_from_real_reviews(embedded))
    splits = load_splits("imdb", data_dir=archive)
    assert splits.sizes() == {"train": 42, "valid": 18, "test": 60}  # 70/30 of official train
    assert sum(splits.valid.labels) == 9
    assert load_splits("imdb", data_dir=archive).digest() == splits.digest()


def test_aclimdb_folder_reads_like_the_archive(tmp_path, embedded):
    archive = tmp_path / "a.tar.gz"
    write_aclimdb_archive(archive, _official_from_real_reviews(embedded))
    with tarfile.open(archive) as handle:
        handle.extractall(tmp_path / "extracted", filter="data")
    assert load_splits("imdb", data_dir=tmp_path / "extracted").digest() == load_splits("imdb", data_dir=archive).digest()


def test_aclimdb_missing_path_names_the_fix(tmp_path):
    with pytest.raises(UserError, match="--data-dir .* does not exist.*--data embedded"):
        load_splits("imdb", data_dir=tmp_path / "nope")


def test_aclimdb_wrong_layout(tmp_path):
    (tmp_path / "reviews").mkdir()
    with pytest.raises(UserError, match="no aclImdb/ folder"):
        load_splits("imdb", data_dir=tmp_path / "reviews")
    archive = tmp_path / "half.tar.gz"
    write_aclimdb_archive(archive, {"train": {"pos": [(1, "fine")], "neg": [(2, "bad")]}})
    with pytest.raises(UserError, match="no reviews under aclImdb/test/pos"):
        load_splits("imdb", data_dir=archive)


def test_aclimdb_truncated_or_corrupt_archive(tmp_path, embedded):
    archive = tmp_path / "full.tar.gz"
    write_aclimdb_archive(archive, _official_from_real_reviews(embedded))
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        load_splits("imdb", data_dir=truncated)
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"this is not an archive" * 100)
    with pytest.raises(UserError, match="truncated or corrupt") as caught:
        load_splits("imdb", data_dir=garbage)
    assert "\n" not in str(caught.value)  # one line, although tarfile's own message has several


def test_aclimdb_non_utf8_bytes_are_replaced_and_counted(tmp_path, embedded):
    official = _official_from_real_reviews(embedded)
    official["train"]["pos"][0] = (0, b"caf\xe9 was great \xff")
    archive = tmp_path / "latin1.tar.gz"
    write_aclimdb_archive(archive, official)
    splits = load_splits("imdb", data_dir=archive)
    assert any("1 review file(s) had invalid UTF-8" in note for note in splits.notes)
    assert any("caf\ufffd was great" in text for _, s in splits.items() for text in s.texts)


def test_aclimdb_offline_without_archive_names_data_dir(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="--data-dir.*embedded"):
        load_splits("imdb", cache_dir=tmp_path, download=False)
    # A download that cannot connect (a closed local port, not the internet) says the same.
    monkeypatch.setattr(aclimdb, "ACLIMDB_URL", "http://127.0.0.1:9/aclImdb_v1.tar.gz")
    with pytest.raises(UserError, match="cannot download aclImdb.*--data-dir"):
        load_splits("imdb", cache_dir=tmp_path)
    assert not list(tmp_path.iterdir()), "a failed download leaves no partial file"


def test_aclimdb_cached_archive_with_wrong_checksum(tmp_path):
    (tmp_path / "aclImdb_v1.tar.gz").write_bytes(b"not the archive")
    with pytest.raises(UserError, match="MD5"):
        load_splits("imdb", cache_dir=tmp_path)


def test_deduplicate_drops_conflicting_texts():
    split = Split(["a", "b", "a", "c", "c"], [1, 0, 1, 0, 1])
    kept, dupes, conflicts = data.deduplicate(split)
    assert kept.texts == ["a", "b"] and dupes == 1 and conflicts == 1
