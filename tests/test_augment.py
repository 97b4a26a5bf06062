import pytest
import torch

from fercli.model.views import tta_views
from fercli.train.augment import augment_batch
from fercli.model.preprocess import Preprocess
from fercli.config import AugmentConfig

PRE = Preprocess(image_size=48, input_size=40, channels=1, mean=0.5, std=0.25)


def batch(n=8):
    return torch.randint(0, 256, (n, 1, 48, 48), dtype=torch.uint8)


def test_augment_shapes_and_determinism():
    cfg = AugmentConfig(crop=40, flip=True, rotate=10, scale=0.1, shift=2, erase=0.5)
    images = batch()
    a = augment_batch(images, PRE, cfg, torch.Generator().manual_seed(1))
    b = augment_batch(images, PRE, cfg, torch.Generator().manual_seed(1))
    c = augment_batch(images, PRE, cfg, torch.Generator().manual_seed(2))
    assert a.shape == (8, 1, 40, 40) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_crop_alone_translates_without_zoom_or_rotation():
    # On a linear ramp, bilinear sampling is exact: a pure shift keeps the ramp's slope and adds no
    # vertical change; a zoom or rotation would change one of them.
    ramp = (torch.arange(48) * 5).clamp(max=255).to(torch.uint8)
    images = ramp.view(1, 1, 1, 48).expand(4, 1, 48, 48).clone()
    out = augment_batch(images, PRE, AugmentConfig(crop=40), torch.Generator().manual_seed(0))
    inner = out[..., 2:-2, 2:-2]
    slope = 5 / 255 / PRE.std
    assert torch.allclose(inner.diff(dim=-1)[..., :20], torch.full_like(inner.diff(dim=-1)[..., :20], slope), atol=1e-3)
    assert inner.diff(dim=-2).abs().max() < 1e-4


def test_flip_and_tencrop_views():
    images = batch(2)
    flip = tta_views(images, PRE, "flip")
    assert len(flip) == 2 and torch.equal(flip[0].flip(-1), flip[1])
    assert len(tta_views(images, PRE, "tencrop")) == 10


def test_erasing_zeroes_a_region():
    cfg = AugmentConfig(erase=1.0)
    full = Preprocess(48, 48, 1, 0.0, 1.0)
    images = torch.full((4, 1, 48, 48), 255, dtype=torch.uint8)
    out = augment_batch(images, full, cfg, torch.Generator().manual_seed(0))
    zero_share = (out == 0).float().mean(dim=(1, 2, 3))
    assert ((zero_share > 0.01) & (zero_share < 0.25)).all()


def test_cutmix_pastes_one_box_and_weighs_by_what_is_left():
    from fercli.train.augment import cutmix

    torch.manual_seed(0)
    x = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 1, 40, 40).clone()  # image i is all i
    mixed, order, lam = cutmix(x, 1.0, torch.Generator().manual_seed(3))
    swapped = [i for i in range(4) if order[i] != i]
    assert len(swapped) >= 2 and 0 < lam < 1
    for i in swapped:
        own = (mixed[i] == i).float().mean().item()
        partner = (mixed[i] == order[i].item()).float().mean().item()
        assert own == pytest.approx(lam) and own + partner == pytest.approx(1.0)  # the share still its own weighs its label


def test_snapped_crops_are_exact_pixel_crops_like_the_tta_views():
    images = batch(16)
    x = (images.float() / 255.0 - PRE.mean) / PRE.std
    out = augment_batch(images, PRE, AugmentConfig(crop=40, flip=True, snap=True), torch.Generator().manual_seed(4))
    offsets = set()
    for i in range(16):
        matches = [
            (top, left)
            for top in range(9)
            for left in range(9)
            for view in (x[i, :, top : top + 40, left : left + 40],)
            if torch.allclose(out[i], view, atol=1e-5) or torch.allclose(out[i], view.flip(-1), atol=1e-5)
        ]
        assert len(matches) == 1, f"image {i} is not one whole-pixel crop"
        offsets.add(matches[0])
    assert len(offsets) > 4  # the crops move: not all centre crops
    # Without snapping the same draw lands between pixels, so it is not a crop of the image.
    blurred = augment_batch(images, PRE, AugmentConfig(crop=40, flip=True), torch.Generator().manual_seed(4))
    assert not torch.allclose(blurred[0], out[0], atol=1e-3)
