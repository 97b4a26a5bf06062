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


def test_capture_conditions_change_pixels_per_image_and_leave_older_recipes_drawing_the_same():
    from fercli.config import AugmentConfig
    from fercli.model.preprocess import Preprocess
    from fercli.train.augment import capture_conditions, gaussian_blur

    images = torch.randint(0, 256, (16, 1, 48, 48), dtype=torch.uint8)
    cfg = AugmentConfig(gamma=0.4, contrast=0.3, brightness=0.1, blur=0.5, noise=0.03)
    out = capture_conditions(images, cfg, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 255
    changed = (out - images.float()).abs().mean(dim=(1, 2, 3))
    assert (changed > 1).all() and changed.std() > 0.5  # every image changed, each its own way
    # A blur flattens an edge; a sharper sigma flattens it less.
    edge = torch.zeros(2, 1, 9, 9)
    edge[..., 4:] = 255
    soft = gaussian_blur(edge, torch.tensor([0.5, 1.5]))
    assert soft[0, 0, 4, 3] < soft[1, 0, 4, 3] < 128 and soft[0, 0, 4, 0] == 0
    # Off by default, the generator is not touched: a recipe without them draws its crops exactly as before.
    pre = Preprocess(48, 40, 1, 0.5, 0.25)
    gen = torch.Generator().manual_seed(3)
    plain = augment_batch(images, pre, AugmentConfig(crop=40, flip=True), gen)
    assert torch.equal(gen.get_state(), fresh_draws(16, AugmentConfig(crop=40, flip=True), seed=3).get_state())
    captured = augment_batch(images, pre, AugmentConfig(crop=40, flip=True, noise=0.05), torch.Generator().manual_seed(3))
    assert not torch.equal(plain, captured)


def fresh_draws(n: int, cfg, seed: int) -> torch.Generator:
    """A generator after the draws of the geometry alone (what augment_batch drew before capture conditions)."""
    from fercli.train.augment import random_affine

    gen = torch.Generator().manual_seed(seed)
    random_affine(n, Preprocess(48, 40, 1, 0.5, 0.25), cfg, gen)
    return gen
