"""Ranking metrics on hand-made score matrices (ties included) and against the reference loops of
ACMR's label mAP and VSE++'s i2t / t2i."""
import numpy as np
import pytest
import torch

from crossmedia.metrics.ranking import (average_precision, first_relevant_rank, mean_average_precision,
                                        mean_rank, median_rank, recall_at_k)

# two queries, four database items; query 1 scores every item the same (ties by index)
SCORES = torch.tensor([[0.9, 0.8, 0.1, 0.5],
                       [0.5, 0.5, 0.5, 0.5]])
Q_LABELS, DB_LABELS = torch.tensor([0, 1]), torch.tensor([0, 1, 0, 1])


@pytest.mark.parametrize("top_k,expected", [
    (None, 0.625),  # q0: order 0 1 3 2, rel T F F T -> (1/1 + 2/4)/2 = .75; q1: F T F T -> (1/2 + 2/4)/2 = .5
    (2, 0.75),      # q0: T F -> 1; q1: F T -> 1/2
    (1, 0.5),       # q0: T -> 1; q1: F -> 0 (no relevant item in the top 1 counts as 0)
])
def test_label_map_by_hand_with_ties(top_k, expected):
    assert mean_average_precision(SCORES, Q_LABELS, DB_LABELS, top_k=top_k).item() == pytest.approx(expected)
    assert mean_average_precision(SCORES, Q_LABELS, DB_LABELS, top_k=top_k, chunk_size=1).item() == pytest.approx(expected)


def test_label_map_multi_hot():
    # order 2 (no shared label), 1 (shares class 0), 0 (shares class 2): (1/2 + 2/3) / 2
    q = torch.tensor([[1, 0, 1]])
    db = torch.tensor([[0, 0, 1], [1, 0, 0], [0, 1, 0]])
    got = mean_average_precision(torch.tensor([[0.1, 0.2, 0.3]]), q, db)
    assert got.item() == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_average_precision_rows():
    rel = torch.tensor([[True, False, True], [False, False, False]])
    assert average_precision(rel).tolist() == pytest.approx([(1 + 2 / 3) / 2, 0.0])


def _acmr_map(image, text, label, k=0):
    """ACMR's ``fx_calc_map_label`` with the cosine distance replaced by a given score matrix."""
    ords = np.argsort(-image @ text.T, axis=1, kind="stable")
    k = k or len(text)
    res = []
    for i in range(len(image)):
        p = r = 0.0
        for j in range(k):
            if label[i] == label[ords[i][j]]:
                r += 1
                p += r / (j + 1)
        res.append(p / r if r > 0 else 0)
    return np.mean(res)


@pytest.mark.parametrize("k", [0, 10])
def test_label_map_equals_acmr_reference(k):
    rng = np.random.default_rng(0)
    image, text, label = rng.normal(size=(30, 8)), rng.normal(size=(30, 8)), rng.integers(0, 4, 30)
    scores = torch.from_numpy(image @ text.T)
    label_t = torch.from_numpy(label)
    got = mean_average_precision(scores, label_t, label_t, top_k=k or None)
    assert got.item() == pytest.approx(_acmr_map(image, text, label, k), abs=1e-6)


# three images with two captions each: captions 2i and 2i+1 belong to image i
I2T = torch.tensor([[0.1, 0.7, 0.9, 0.3, 0.0, 0.0],
                    [0.5, 0.2, 0.5, 0.1, 0.0, 0.0],   # caption 0 ties caption 2 and ranks first
                    [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]])
IMAGES, CAPTIONS = torch.arange(3), torch.arange(6) // 2


def test_image_to_text_ranks_by_hand():
    ranks = first_relevant_rank(I2T, IMAGES, CAPTIONS)
    # image 0: order 2 1 3 0 .. -> caption 1 at rank 2; image 1: 0, 2 (tie, by index) -> rank 2;
    # image 2: its captions 4, 5 come after 0..3 -> rank 5
    assert ranks.tolist() == [2, 2, 5]
    assert [recall_at_k(ranks, k).item() for k in (1, 2, 5)] == pytest.approx([0.0, 2 / 3, 1.0])
    assert median_rank(ranks).item() == 2 and mean_rank(ranks).item() == 3


def test_text_to_image_ranks_by_hand():
    t2i = torch.tensor([[0.1, 0.5, 0.9], [0.7, 0.2, 0.8], [0.9, 0.5, 0.7],
                        [0.3, 0.1, 0.6], [0.1, 0.5, 0.5], [0.3, 0.1, 0.4]])
    ranks = first_relevant_rank(t2i, CAPTIONS, IMAGES, chunk_size=4)
    assert ranks.tolist() == [3, 2, 3, 3, 2, 1]  # caption 4: image 2 ties image 1, which ranks first
    assert recall_at_k(ranks, 1).item() == pytest.approx(1 / 6)
    assert median_rank(ranks).item() == 2  # sorted 1 2 2 3 3 3: median 2.5 -> floor 2
    assert mean_rank(ranks).item() == pytest.approx(14 / 6)


def test_ranks_for_integer_scores_and_bf16():
    assert first_relevant_rank(-torch.tensor([[0, 1, 3, 1]]), torch.tensor([1]), torch.tensor([0, 0, 1, 1])).item() == 3
    assert first_relevant_rank(I2T.bfloat16(), IMAGES, CAPTIONS).tolist() == [2, 2, 5]


def test_ranks_with_multi_hot_labels():
    one_hot = torch.nn.functional.one_hot
    assert first_relevant_rank(I2T, one_hot(IMAGES, 4), one_hot(CAPTIONS, 4)).tolist() == [2, 2, 5]
    # image 0 also shares a label with caption 4 (score 0.0, last) and image 2 with caption 0 (0.9, first)
    q = torch.tensor([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0]])
    db = torch.tensor([[1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 0]])
    db[0, 2] = 1
    assert first_relevant_rank(I2T, q, db).tolist() == [2, 2, 1]


def _vsepp(images, captions):
    """VSE++'s evaluation.py i2t and t2i (images repeated 5 times, as it takes them), 0-based ranks."""
    npts = images.shape[0] // 5
    i2t = np.zeros(npts)
    for index in range(npts):
        d = (images[5 * index][None] @ captions.T).flatten()
        inds = np.argsort(d)[::-1]
        i2t[index] = min(np.where(inds == i)[0][0] for i in range(5 * index, 5 * index + 5))
    ims = images[::5]
    t2i = np.zeros(5 * npts)
    for index in range(npts):
        d = captions[5 * index:5 * index + 5] @ ims.T
        for i in range(5):
            t2i[5 * index + i] = np.where(np.argsort(d[i])[::-1] == index)[0][0]
    stats = lambda r: [100.0 * (r < k).mean() for k in (1, 5, 10)] + [np.floor(np.median(r)) + 1, r.mean() + 1]
    return stats(i2t), stats(t2i)


def test_equals_vsepp_reference_on_five_captions_per_image():
    rng = np.random.default_rng(1)
    images = np.repeat(rng.normal(size=(40, 16)), 5, axis=0)  # (200, 16) as VSE++ stores them
    captions = images + rng.normal(scale=1.5, size=images.shape)  # (200, 16)
    ref_i2t, ref_t2i = _vsepp(images, captions)
    sims = torch.from_numpy(images[::5] @ captions.T)  # (40, 200)
    img_ids, cap_ids = torch.arange(40), torch.arange(200) // 5
    for ranks, ref in ((first_relevant_rank(sims, img_ids, cap_ids), ref_i2t),
                       (first_relevant_rank(sims.T, cap_ids, img_ids), ref_t2i)):
        ours = [100 * recall_at_k(ranks, k).item() for k in (1, 5, 10)] + [median_rank(ranks).item(),
                                                                           mean_rank(ranks).item()]
        assert ours == pytest.approx(ref)
        assert 0 < ours[0] < 100  # not a trivial case


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="query 1 has no relevant"):
        first_relevant_rank(SCORES, torch.tensor([0, 7]), DB_LABELS)
    with pytest.raises(ValueError, match="NaN"):
        mean_average_precision(torch.tensor([[float("nan"), 1.0]]), torch.tensor([0]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="db_labels must be"):
        mean_average_precision(SCORES, Q_LABELS, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="1-based"):
        recall_at_k(torch.tensor([0, 1]), 1)


def test_torch_count_equals_the_cpu_kernel_on_ties():
    """The two counting paths (PyTorch for GPUs, numba on the CPU) give the same ranks, ties included."""
    from crossmedia.metrics import kernels, ranking

    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (50, 30), generator=gen)  # (50, 30) few values: ties everywhere
    first = torch.randint(0, 30, (50,), generator=gen)
    first[:2] = torch.tensor([0, 29])  # j* at both ends
    best = scores.gather(1, first[:, None]).squeeze(1)
    ours = ranking._count_above(scores, best, first)
    by_kernel, nans = kernels.ranks_from_best(scores.numpy(), best.numpy(), first.numpy())
    by_sort = (scores.sort(dim=1, descending=True, stable=True).indices == first[:, None]).int().argmax(dim=1) + 1
    assert torch.equal(ours, by_sort) and torch.equal(torch.from_numpy(by_kernel), by_sort)
    assert not nans.any()
    with pytest.raises(ValueError, match="query 1 contain NaN"):
        first_relevant_rank(torch.tensor([[1.0, 0.0], [float("nan"), 1.0]]), torch.tensor([0, 1]), torch.tensor([0, 1]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_equals_cpu():
    gen = torch.Generator().manual_seed(2)
    scores = torch.randint(0, 6, (300, 500), generator=gen).float()  # ties everywhere
    ql, dl = torch.randint(0, 7, (300,), generator=gen), torch.randint(0, 7, (500,), generator=gen)
    ql[0] = dl[0]
    dl[:7] = torch.arange(7)  # every class present
    for fn in (first_relevant_rank, mean_average_precision):
        cpu, gpu = fn(scores, ql, dl), fn(scores.cuda(), ql.cuda(), dl.cuda())
        assert torch.allclose(cpu.double(), gpu.cpu().double())
