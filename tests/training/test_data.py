from medsent.core.config import VocabConfig
from medsent.neural.batching import PadCollator, bucket_of
from medsent.neural.vocab import PAD_ID, UNK_ID, WordVocab
from medsent.training.data import BucketBatchSampler

LENGTHS = [5, 40, 33, 100, 7, 250, 64, 65, 12, 31] * 7
BUCKETS = [32, 64, 128, 256]


def test_every_example_once_per_epoch_and_batches_share_a_bucket() -> None:
    sampler = BucketBatchSampler(LENGTHS, BUCKETS, batch_size=4, shuffle=True, seed=1)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(LENGTHS)))
    assert all(len({bucket_of(LENGTHS[i], BUCKETS) for i in b}) == 1 for b in batches)


def test_order_depends_only_on_seed_and_epoch() -> None:
    a = BucketBatchSampler(LENGTHS, BUCKETS, 4, True, seed=3)
    b = BucketBatchSampler(LENGTHS, BUCKETS, 4, True, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    b.set_epoch(3)
    assert list(a) != list(b)
    assert b.sampler is b  # Lightning reaches set_epoch through batch_sampler.sampler


def test_ddp_ranks_get_disjoint_shards_of_equal_length() -> None:
    ranks = [BucketBatchSampler(LENGTHS, BUCKETS, 4, True, seed=0, rank=r, world_size=2) for r in (0, 1)]
    shards = [list(s) for s in ranks]
    assert len(shards[0]) == len(shards[1])
    covered = {i for shard in shards for b in shard for i in b}
    assert covered == set(range(len(LENGTHS)))


def test_collate_pads_to_static_bucket_lengths() -> None:
    collate = PadCollator(BUCKETS, PAD_ID)
    batch = collate([([5, 6, 7], 1), ([8] * 40, 2)])
    assert batch["input_ids"].shape == (2, 64)
    assert batch["attention_mask"].sum().item() == 43
    assert batch["labels"].tolist() == [1, 2]
    assert collate([([5], 0)])["input_ids"].shape == (1, 32)
    dynamic = PadCollator(BUCKETS, PAD_ID, static=False)  # the CPU default: no padding beyond the longest
    assert dynamic([([5, 6, 7], 1), ([8] * 40, 2)])["input_ids"].shape == (2, 40)


def test_word_vocab_keeps_negation_tokens_whole_and_reports_coverage(tmp_path) -> None:  # type: ignore[no-untyped-def]
    texts = ["no NEG_effects at all", "no NEG_effects and works", "works well", "rare word"]
    vocab = WordVocab.build(texts, VocabConfig(min_freq=2, max_len=8))
    assert vocab.tokenizer.token_to_id("<pad>") == PAD_ID and vocab.tokenizer.token_to_id("<unk>") == UNK_ID
    assert vocab.tokenizer.token_to_id("NEG_effects") is not None
    ids = vocab.encode(["no NEG_effects zebra works " + "well " * 10, ""])
    assert len(ids[0]) == 8 and ids[0][2] == UNK_ID and ids[1] == [UNK_ID]
    assert vocab.coverage(texts) == 6 / 12  # no, NEG_effects x2 each, works x2 of 12 tokens
    vocab.save(tmp_path)
    assert WordVocab.load(tmp_path, 8).encode(["works well"]) == vocab.encode(["works well"])
