"""Parametric face-like identities under pose, light, expression, accessories and noise (SYNTHETIC).

An identity is a vector of face parameters (head ellipsoid and jaw, eyes, brows, nose, mouth, skin
albedo and its texture, hair line and shade) drawn from a population; with `family_size` > 1,
identities come in families of look-alikes that differ by `family_spread` population standard
deviations. An image is the identity's head, an ellipsoid height field, turned in 3-D (yaw, pitch),
lit from a direction (Lambert shading from the surface normal), with an expression, glasses,
an occluder, scale/shift/roll, blur and sensor noise, each with a knob (see data/README.md).

Random numbers come from a counter-based hash of (seed, stream, identity, image, parameter), so
identity k is the same face whatever `num_identities` is, image r of it is the same image whatever
`images_per_identity` and `chunk` are, and the pixel path uses only correctly rounded float32
operations (no transcendental functions), so the bytes do not depend on batching either.

    python -m marginface.data.synthfaces --sheet docs/figures/synthfaces.png
"""

from __future__ import annotations

import argparse
import math

import torch

from marginface.data.base import DataError, FaceSet

_M32 = 0xFFFFFFFF
_TEXTURE = 7  # skin texture grid per identity (TEXTURE x TEXTURE values over the face)
_BANK = 256  # sensor-noise fields per set; an image draws one
# expression extremes painted per identity; an image blends them (blend shapes) with weights in [0, 1]
_SMILE, _OPEN, _RAISE = 0.1, 0.09, 0.08
# channels of the per-identity texture maps
_MAPS = ["neutral", "smile", "open", "raise", "blink", "glasses", "normal_x", "normal_y", "hair"]

# identity parameters: name -> (population mean, population std, low clip, high clip); lengths in
# head-normalised units (x in units of the head's half width, y of its half height) unless noted
_IDENTITY = {
    "head_a": (0.62, 0.035, 0.52, 0.72),  # half width, in units of half the image height
    "head_b": (0.8, 0.035, 0.7, 0.9),  # half height
    "head_c": (0.55, 0.05, 0.42, 0.68),  # depth: how fast the surface turns away (shading)
    "jaw": (0.35, 0.12, 0.05, 0.65),  # how much the lower face narrows
    "eye_x": (0.37, 0.035, 0.28, 0.46),
    "eye_y": (0.08, 0.04, -0.02, 0.18),
    "eye_rx": (0.17, 0.02, 0.12, 0.22),
    "eye_ry": (0.085, 0.012, 0.055, 0.11),
    "iris": (0.075, 0.01, 0.05, 0.095),
    "iris_shade": (0.2, 0.1, 0.03, 0.5),
    "socket": (0.3, 0.07, 0.1, 0.5),  # darkening around the eyes
    "brow_y": (0.3, 0.035, 0.2, 0.4),
    "brow_len": (0.21, 0.03, 0.14, 0.28),
    "brow_thick": (0.05, 0.012, 0.025, 0.08),
    "brow_arch": (0.05, 0.03, -0.03, 0.12),
    "brow_tilt": (0.0, 0.12, -0.25, 0.25),
    "brow_dark": (0.55, 0.15, 0.2, 0.85),
    "nose_y": (-0.18, 0.03, -0.26, -0.1),  # tip
    "nose_len": (0.26, 0.04, 0.16, 0.36),
    "nose_w": (0.13, 0.02, 0.09, 0.18),
    "nose_h": (0.7, 0.2, 0.3, 1.1),  # bump height: how strongly it catches the light
    "nostril_x": (0.075, 0.012, 0.05, 0.1),
    "mouth_y": (-0.45, 0.04, -0.55, -0.35),
    "mouth_w": (0.27, 0.035, 0.18, 0.36),
    "mouth_curve": (0.0, 0.02, -0.05, 0.05),
    "lip_t": (0.05, 0.012, 0.025, 0.08),
    "lip_dark": (0.35, 0.1, 0.1, 0.6),
    "skin": (0.62, 0.1, 0.35, 0.85),
    "texture": (0.12, 0.04, 0.03, 0.22),
    "hair_shade": (0.18, 0.12, 0.04, 0.7),
    "hairline": (
        0.52,
        0.08,
        0.32,
        0.72,
    ),  # height of the forehead hairline, in units of half height
    "hair_side": (0.6, 0.15, 0.2, 0.9),  # how far the hairline drops at the temples
    "hair_volume": (1.08, 0.03, 1.0, 1.16),  # hair outline, relative to the head
    "tint_r": (1.08, 0.05, 0.95, 1.2),  # skin colour (RGB only)
    "tint_b": (0.86, 0.05, 0.72, 1.0),
    "hair_r": (1.05, 0.12, 0.8, 1.3),
}

# per-image nuisance draws, each uniform in [0, 1): their order fixes the stream, so append only
_NUISANCE = [
    "yaw", "pitch", "roll", "scale", "tx", "ty", "light_x", "light_y", "light_k", "gain",
    "smile", "open", "raise", "blink",
    "glasses", "glasses_r", "glasses_shade", "occ", "occ_x", "occ_y", "occ_rx", "occ_ry", "occ_shade",
    "bg", "bg_x", "bg_y", "blur", "noise_a", "noise_b",
]  # fmt: skip


def _mix(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (in int64, products below 2^63) with good avalanche."""
    x = x ^ (x >> 16)
    x = (x * 0x45D9F3B) & _M32
    x = x ^ (x >> 16)
    x = (x * 0x45D9F3B) & _M32
    return x ^ (x >> 16)


def _key(*parts: int | torch.Tensor) -> torch.Tensor:
    """One hashed key per element of the broadcast parts (ints or int64 tensors)."""
    h = torch.zeros((), dtype=torch.int64)
    for part in parts:
        h = _mix(((h * 0x01000193) & _M32) ^ (torch.as_tensor(part, dtype=torch.int64) & _M32))
    return h


def _uniform(keys: torch.Tensor, count: int) -> torch.Tensor:
    """(len(keys), count) float64 uniforms in (0, 1), a pure function of (key, column)."""
    h = _key(keys[:, None], torch.arange(count))
    return ((h >> 8).double() + 0.5) / 2.0**24


def _normal(keys: torch.Tensor, count: int) -> torch.Tensor:
    """(len(keys), count) float64 standard normals (Box-Muller on the hash uniforms)."""
    u = _uniform(keys, 2 * count)
    return torch.sqrt(-2.0 * torch.log(u[:, :count])) * torch.cos(2 * math.pi * u[:, count:])


def identity_parameters(
    identities: torch.Tensor, seed: int, family_size: int, family_spread: float
) -> dict[str, torch.Tensor]:
    """Face parameters (float64, one per identity) of the given identity numbers; k's never depend on the others."""
    names = list(_IDENTITY)
    own = _normal(_key(seed, 1, identities), len(names))
    if family_size > 1:
        centre = _normal(_key(seed, 2, identities // family_size), len(names))
        z = (centre + family_spread * own) / math.sqrt(1.0 + family_spread**2)
    else:
        z = own
    out = {}
    for j, name in enumerate(names):
        mean, std, low, high = _IDENTITY[name]
        out[name] = (mean + std * z[:, j]).clamp(low, high)
    # the skin texture: a coarse grid of values in [-1, 1], look-alikes sharing most of it
    tex = _uniform(_key(seed, 3, identities), _TEXTURE**2) * 2 - 1
    if family_size > 1:
        fam = _uniform(_key(seed, 4, identities // family_size), _TEXTURE**2) * 2 - 1
        tex = (fam + family_spread * tex) / math.sqrt(1.0 + family_spread**2)
    out["texture_grid"] = tex
    return out


def _noise_bank(seed: int, h: int, w: int) -> torch.Tensor:
    """(BANK, H*W) float32 standard normal fields, the same for every chunk of a set."""
    keys = _key(seed, 5, torch.arange(_BANK * h * w))
    u = ((_mix(keys) >> 8).double() + 0.5) / 2.0**24
    v = ((_mix(keys ^ 0x5BD1E995) >> 8).double() + 0.5) / 2.0**24
    z = torch.sqrt(-2.0 * torch.log(u)) * torch.cos(2 * math.pi * v)
    return z.float().view(_BANK, h * w)


def _per_image(
    ident: dict[str, torch.Tensor],
    u: dict[str, torch.Tensor],
    knobs: dict[str, float],
    h: int,
    zoom: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Every per-image number the renderer needs, computed in float64, returned float32 (B, 1, 1)."""
    rad = math.pi / 180
    yaw = (2 * u["yaw"] - 1) * knobs["yaw"] * rad
    pitch = (2 * u["pitch"] - 1) * knobs["pitch"] * rad
    roll = (2 * u["roll"] - 1) * knobs["roll"] * rad
    jit, light, expr, bg = knobs["jitter"], knobs["light"], knobs["expression"], knobs["background"]
    a, b, c = ident["head_a"], ident["head_b"], ident["head_c"]
    p = {name: ident[name] for name in ("head_a", "jaw", "skin", "hair_shade", "hair_volume")}
    p.update(tint_r=ident["tint_r"], tint_b=ident["tint_b"])
    cy, sy, cp, sp = torch.cos(yaw), torch.sin(yaw), torch.cos(pitch), torch.sin(pitch)
    # a camera ray (x, y, t) in head coordinates q = R^T (x, y, t), R = R_yaw R_pitch, divided by the
    # semi-axes (a, b, c) so that the head is the unit sphere: q = (m_x. x + m_.y y) + t d
    p.update(
        m_xx=cy / a, m_yx=sy * sp / b, m_yy=cp / b, m_zx=sy * cp / c, m_zy=-sp / c,
        d_x=-sy / a, d_y=cy * sp / b, d_z=cy * cp / c, ia2=1 / a**2, ib2=1 / b**2, ic2=1 / c**2,
    )  # fmt: skip
    p["A"] = p["d_x"] ** 2 + p["d_y"] ** 2 + p["d_z"] ** 2
    p["inv_A"] = 1 / p["A"]
    scale = zoom * (1.0 + jit * 0.1 * (2 * u["scale"] - 1))
    p["cos_r"], p["sin_r"] = torch.cos(roll) / scale, torch.sin(roll) / scale
    p["tx"], p["ty"] = jit * 0.07 * (2 * u["tx"] - 1), jit * 0.07 * (2 * u["ty"] - 1)
    # light direction in the camera frame, brought into head coordinates where the normal is
    # (x/a, y/b, z/c): the 1/a, 1/b, 1/c are folded into the light
    lx = light * 1.1 * (2 * u["light_x"] - 1)
    ly = light * (0.8 * (2 * u["light_y"] - 1) + 0.2)
    norm = torch.sqrt(lx**2 + ly**2 + 1.0)
    lx, ly, lz = lx / norm, ly / norm, 1.0 / norm
    strength = 1.0 + light * 0.35 * (2 * u["light_k"] - 1)
    p["l_x"] = strength * (cy * lx - sy * lz) / a
    p["l_y"] = strength * (sy * sp * lx + cp * ly + cy * sp * lz) / b
    p["l_z"] = strength * (sy * cp * lx - sp * ly + cy * cp * lz) / c
    p["gain"] = 1.0 + light * 0.15 * (2 * u["gain"] - 1)
    p["smile"] = expr * (1.4 * u["smile"] - 0.4).clamp(min=0)
    p["open"] = expr * (2 * u["open"] - 1).clamp(min=0)
    p["raise"] = expr * u["raise"] ** 2
    p["blink"] = expr * (3 * u["blink"] - 2).clamp(0, 1)
    p["glasses"] = (u["glasses"] < knobs["glasses"]).double()
    p["glasses_shade"] = 0.05 + 0.25 * u["glasses_shade"]
    p["occ"] = (u["occ"] < knobs["occlusion"]).double()
    p["occ_x"], p["occ_y"] = 0.7 * (2 * u["occ_x"] - 1), 0.65 * (2 * u["occ_y"] - 1) - 0.1
    p["occ_rx"], p["occ_ry"] = 0.2 + 0.35 * u["occ_rx"], 0.15 + 0.3 * u["occ_ry"]
    p["occ_shade"] = 0.1 + 0.8 * u["occ_shade"]
    p["bg"] = 0.45 + bg * 0.35 * (2 * u["bg"] - 1)
    p["bg_x"], p["bg_y"] = bg * 0.25 * (2 * u["bg_x"] - 1), bg * 0.25 * (2 * u["bg_y"] - 1)
    # Gaussian blur, 5 taps; sigma in pixels scales with the image height (1 = 56 px)
    sigma = knobs["blur"] * (h / 56) * u["blur"] + 1e-6
    w1, w2 = torch.exp(-0.5 / sigma**2), torch.exp(-2.0 / sigma**2)
    total = 1 + 2 * w1 + 2 * w2
    p["w0"], p["w1"], p["w2"] = 1 / total, w1 / total, w2 / total
    p["noise"] = torch.full_like(a, knobs["noise"])
    return {k: v.float().view(-1, 1, 1) for k, v in p.items()}


def _bump(r2: torch.Tensor) -> torch.Tensor:
    """A smooth compact bump, 1 at r2 = 0 and 0 for r2 >= 1 (polynomial: exact in every code path)."""
    return (1 - r2).clamp(min=0).square()


def _edge(distance: torch.Tensor, width: float) -> torch.Tensor:
    """An anti-aliased step: 0 at distance <= 0, 1 beyond `width`, linear between (overwrites `distance`)."""
    return distance.mul_(1 / width).clamp_(0, 1)


def _paint(
    p: dict[str, torch.Tensor],
    tex: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    smile: float = 0.0,
    open_: float = 0.0,
    raise_: float = 0.0,
    blink: float = 0.0,
) -> tuple[torch.Tensor, ...]:
    """Albedo of the face surface at (x, y) on the unit sphere, identities' parameters (K, 1, 1)."""  # fmt: skip
    ax = x.abs()
    albedo = p["skin"] * (1 + p["texture"] * tex)
    ey = y - p["eye_y"]
    exn = (ax - p["eye_x"]) / p["eye_rx"]
    albedo = albedo * (1 - p["socket"] * _bump(exn.square() * 0.35 + (ey / 0.2).square()))
    # hair above the hairline, which drops towards the temples, and down the sides to the ears
    hair = _edge(y - p["hairline"] + p["hair_side"] * x * x, 0.06)
    hair = (hair + _edge(ax - 0.86, 0.05) * _edge(y + 0.1, 0.05)).clamp(max=1)
    albedo = albedo + (p["hair_shade"] * (1 + 0.5 * p["texture"] * tex) - albedo) * hair
    bx = (ax - p["eye_x"] + 0.02) / p["brow_len"]
    by = y - p["brow_y"] - raise_ - p["brow_arch"] * (1 - bx * bx) - p["brow_tilt"] * bx * 0.1
    brow = _bump(bx * bx) * _edge(p["brow_thick"] - by.abs(), 0.03)
    albedo = albedo * (1 - p["brow_dark"] * brow * (1 - hair))
    # eyes: sclera, iris and the upper lid line; a blink closes them
    ry = p["eye_ry"] * (1 - 0.9 * blink)
    eye = _edge(1 - exn.square() - (ey / ry).square(), 0.5) * (1 - 0.8 * blink)
    iris = _edge(p["iris"] - ((ax - p["eye_x"]).square() + ey.square()).sqrt(), 0.03)
    lid = _bump(exn.square()) * _edge(0.03 - (ey - ry * 0.8).abs(), 0.03)
    albedo = albedo + (0.75 - (0.75 - p["iris_shade"]) * iris - albedo) * eye
    albedo = albedo * (1 - 0.7 * lid)
    nost = ((ax - p["nostril_x"]) / 0.04).square() + ((y - p["nose_y"] + 0.015) / 0.03).square()
    under = (x / (1.4 * p["nose_w"])).square() + ((y - p["nose_y"] + 0.05) / 0.04).square()
    albedo = albedo * (1 - 0.7 * _bump(nost)) * (1 - 0.25 * _bump(under))
    # mouth: lips along a curve that a smile bends up; an open mouth shows the dark inside
    mx = x / p["mouth_w"]
    along = (1 - mx * mx).clamp(min=0)
    my = y - p["mouth_y"] - (p["mouth_curve"] + smile) * mx * mx + 0.15 * smile
    gap = open_ * along
    lips = _edge(p["lip_t"] * along.sqrt() + gap - my.abs(), 0.025)
    parting = _edge(0.012 - (my - 0.01).abs(), 0.012) * _edge(along - 0.05, 0.1)
    albedo = albedo * (1 - p["lip_dark"] * lips) * (1 - 0.5 * parting)
    albedo = albedo + (0.08 - albedo) * _edge(gap - my.abs(), 0.02)
    # glasses: two rings and a bridge (a mask; the shade is the image's)
    gr = ((ax - p["eye_x"]).square() + (ey * 1.25).square()).sqrt()
    radius = p["eye_rx"] + 0.03
    rim = _edge(0.022 - (gr - radius).abs(), 0.02)
    bridge = _edge(0.02 - (ey - 0.03).abs(), 0.02) * _edge(p["eye_x"] - radius - ax, 0.02)
    glasses = (rim + bridge).clamp(max=1)
    # the nose: a bump h = 0.12 nose_h (1 - r2)^2 tilts the normal by -grad h
    ny = (y - p["nose_y"] - 0.5 * p["nose_len"]) / (0.5 * p["nose_len"])
    fall = (1 - x.square() / p["nose_w"].square() - ny.square()).clamp(min=0) * (
        -0.48 * p["nose_h"]
    )
    gx, gy = fall * x / p["nose_w"].square(), fall * ny / (0.5 * p["nose_len"])
    return albedo, glasses, gx, gy, hair


def identity_maps(ident: dict[str, torch.Tensor], size: int) -> torch.Tensor:
    """(K, len(_MAPS), size * size) float32 texture maps over x, y in [-1, 1] (row 0 at y = 1)."""
    p = {k: v.float().view(-1, 1, 1) for k, v in ident.items() if k != "texture_grid"}
    axis = torch.linspace(-1, 1, size)
    x, y = axis.view(1, 1, size), axis.flip(0).view(1, size, 1)
    grid = ident["texture_grid"].float()
    k = len(grid)
    xs, ys = x.expand(k, size, size).reshape(k, -1), y.expand(k, size, size).reshape(k, -1)
    tex = _sample(grid, xs, ys, _TEXTURE).view(k, size, size)
    neutral, glasses, gx, gy, hair = _paint(p, tex, x, y)

    def change(rows: tuple[float, float], **expression: float) -> torch.Tensor:
        # an expression moves one feature: repaint only the rows (of y) where it can change
        keep = torch.nonzero((y.flatten() <= rows[1]) & (y.flatten() >= rows[0])).flatten()
        lo, hi = int(keep[0]), int(keep[-1]) + 1
        out = torch.zeros_like(neutral.expand(k, size, size))
        part = _paint(p, tex[:, lo:hi], x, y[:, lo:hi], **expression)[0]
        out[:, lo:hi] = part - neutral[:, lo:hi]
        return out

    smile = change((-0.9, -0.2), smile=_SMILE)
    open_ = change((-0.9, -0.2), open_=_OPEN)
    raise_ = change((0.1, 0.65), raise_=_RAISE)
    blink = change((-0.1, 0.3), blink=1.0)
    # the normal's x and y, tilted by the nose (z is the sphere's): what the light is dotted with
    maps = [neutral, smile, open_, raise_, blink, glasses, x - gx, y - gy, hair]
    return torch.stack([m.expand(k, size, size) for m in maps], 1).reshape(
        k, len(maps), size * size
    )


def _texture_grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x, y (1, size * size) of the texture maps' points: [-1, 1]^2, row 0 at y = 1."""
    axis = torch.linspace(-1, 1, size)
    return axis.repeat(size).view(1, -1), axis.flip(0).repeat_interleave(size).view(1, -1)


def _render(
    p: dict[str, torch.Tensor],
    maps: torch.Tensor,
    size: int,
    bank: torch.Tensor,
    h: int,
    w: int,
    channels: int,
    zoom: float = 1.0,
) -> torch.Tensor:
    """(B, C, H, W) float images in about [0, 255]: per-image parameters (B, 1, 1), maps (B, M, T*T)."""  # fmt: skip
    pix = 2.0 / h  # one pixel: the image height spans [-1, 1]
    gy = torch.linspace(1 - pix / 2, -1 + pix / 2, h).view(1, h, 1)
    gx = (torch.arange(w, dtype=torch.float32) - (w - 1) / 2).view(1, 1, w) * pix
    # the image's face in texture space: neutral albedo plus expression and glasses (blend shapes),
    # shaded there (texture point (X, Y) is the front of the unit sphere, normal (X/a, Y/b, Z/c))
    m = maps.unbind(1)
    sc = lambda v: v.view(-1, 1)  # noqa: E731 - (B, 1) views of the (B, 1, 1) parameters
    albedo = m[0] + sc(p["smile"]) * m[1] + sc(p["open"]) * m[2] + sc(p["raise"]) * m[3]
    albedo = albedo + sc(p["blink"]) * m[4]
    albedo = albedo + (sc(p["glasses_shade"]) - albedo) * (m[5] * sc(p["glasses"]))
    tx, ty = _texture_grid(size)
    tz2 = (1 - tx * tx - ty * ty).clamp(min=0)
    lam = m[6] * sc(p["l_x"]) + m[7] * sc(p["l_y"]) + tz2.sqrt() * sc(p["l_z"])
    norm = (tx * tx * sc(p["ia2"]) + ty * ty * sc(p["ib2"]) + tz2 * sc(p["ic2"])).sqrt_()
    texture = albedo * (lam.div_(norm).clamp_(min=0).mul_(0.62).add_(0.38))
    # similarity (roll, scale, shift) inverted: image -> camera-plane coordinates
    ux, uy = gx - p["tx"], gy - p["ty"]
    px = p["cos_r"] * ux + p["sin_r"] * uy
    py = p["cos_r"] * uy - p["sin_r"] * ux + 0.02
    # orthographic ray against the head (the unit sphere in normalised coordinates): front hit
    qx0 = p["m_xx"] * px
    qy0 = p["m_yx"] * px + p["m_yy"] * py
    qz0 = p["m_zx"] * px + p["m_zy"] * py
    bh = qx0 * p["d_x"] + qy0 * p["d_y"] + qz0 * p["d_z"]
    disc = bh * bh - p["A"] * (qx0 * qx0 + qy0 * qy0 + qz0 * qz0 - 1)
    t = (disc.clamp(min=0).sqrt_() - bh).mul_(p["inv_A"])
    x, y, z = qx0 + t * p["d_x"], qy0 + t * p["d_y"], qz0 + t * p["d_z"]
    # one pixel spans pix / zoom of the head's plane
    inv_edge = p["head_a"] / (2 * (pix / zoom) * p["A"])
    head = (disc * inv_edge).clamp_(0, 1)
    below = (-y).clamp(min=0)  # the jaw: the lower face narrows, cut-away parts show what is behind
    head = head * _edge(1 - p["jaw"] * below * below - x.abs(), 0.05)
    b = len(x)
    face = _sample(texture, x.reshape(b, -1), y.reshape(b, -1), size).view(b, h, w)
    back_of_head = _edge(-z, 0.2)  # seen near the outline when the head turns: hair, in shadow
    face = face + (0.45 * p["hair_shade"] - face) * back_of_head
    # behind the head: hair volume (a slightly larger sphere, upper part), neck, background
    big = disc + p["A"] * (p["hair_volume"].square() - 1)
    top = qy0 - bh * (p["inv_A"] * p["d_y"])
    halo = (big * inv_edge).clamp_(0, 1) * _edge(top + 0.1, 0.15)
    # (B, 1, W) x (B, H, 1); its width and top follow the zoom
    neck = _edge(0.3 * zoom - ux.abs(), 2 * pix) * _edge(-uy - 0.35 * zoom, 2 * pix)
    image = p["bg"] + p["bg_x"] * gx + p["bg_y"] * gy
    image = image + (0.65 * p["skin"] - image) * neck
    image = image + (0.5 * p["hair_shade"] - image) * halo
    image = image + (face - image) * head
    # occluder: an opaque ellipse in the image plane (a hand, a scarf, a microphone)
    hit = torch.nonzero(p["occ"].flatten()).flatten()  # drawn only where there is one
    if len(hit):
        occ = 1 - ((gx - p["occ_x"][hit]) / p["occ_rx"][hit]).square()
        occ = _edge(occ - ((gy - p["occ_y"][hit]) / p["occ_ry"][hit]).square(), 0.3)
        image[hit] += (p["occ_shade"][hit] - image[hit]) * occ
    image = image * (p["gain"] * 255)
    if channels == 3:
        hair = _sample(m[8], x.reshape(b, -1), y.reshape(b, -1), size).view(b, h, w)
        skin = head * (1 - hair) * (1 - back_of_head)
        image = torch.stack(
            [image * (1 + (p["tint_r"] - 1) * skin), image, image * (1 + (p["tint_b"] - 1) * skin)],
            1,
        )
    else:
        image = image[:, None]
    image = _blur(image, p["w0"][:, None], p["w1"][:, None], p["w2"][:, None])
    return image + (p["noise"][:, None] * 255) * bank


def _sample(grid: torch.Tensor, x: torch.Tensor, y: torch.Tensor, g: int) -> torch.Tensor:
    """Bilinear samples (B, P) of (B, g*g) grids over [-1, 1]^2 at points x, y (B, P); exact arithmetic."""
    b = len(x)
    # per cell: value, x slope, y slope, twist, so that one index serves all four corners
    cells = grid.view(b, g, g)
    right = torch.cat([cells[:, :, 1:], cells[:, :, -1:]], 2)
    down = torch.cat([cells[:, 1:], cells[:, -1:]], 1)
    diagonal = torch.cat([right[:, 1:], right[:, -1:]], 1)
    slope_x, slope_y = right - cells, down - cells
    twist = diagonal - down - slope_x
    fx = ((x + 1) * (0.5 * (g - 1))).clamp_(0, g - 1.001)
    fy = ((1 - y) * (0.5 * (g - 1))).clamp_(0, g - 1.001)
    ix, iy = fx.floor(), fy.floor()
    fx, fy = fx.sub_(ix), fy.sub_(iy)
    index = iy.mul_(g).add_(ix)
    if (
        b * g * g < 2**24
    ):  # the flat index is an exact float32 integer: one conversion, no int64 adds
        index = index.add_(torch.arange(b, dtype=torch.float32).view(b, 1) * (g * g)).long()
    else:
        index = index.long() + torch.arange(b).view(b, 1) * (g * g)
    v, sx = cells.take(index), slope_x.take(index)
    sy, tw = slope_y.take(index), twist.take(index)
    return v + sx * fx + (sy + tw * fx) * fy


def _blur(
    image: torch.Tensor, w0: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor
) -> torch.Tensor:
    """Separable 5-tap blur with per-image weights, edges replicated (weighted sums: batch-independent)."""
    for dim in (-1, -2):
        n = image.shape[dim]
        pad = torch.cat(
            [image.narrow(dim, 0, 1)] * 2 + [image] + [image.narrow(dim, n - 1, 1)] * 2, dim
        )
        near = pad.narrow(dim, 1, n) + pad.narrow(dim, 3, n)
        far = pad.narrow(dim, 0, n) + pad.narrow(dim, 4, n)
        image = w0 * image + w1 * near + w2 * far
    return image


def make_synthfaces(
    num_identities: int = 100,
    images_per_identity: int = 10,
    image_size: tuple[int, int] = (56, 48),
    channels: int = 1,
    seed: int = 0,
    family_size: int = 1,
    family_spread: float = 0.5,
    yaw: float = 30.0,
    pitch: float = 20.0,
    roll: float = 15.0,
    light: float = 1.0,
    expression: float = 1.0,
    glasses: float = 0.15,
    occlusion: float = 0.1,
    jitter: float = 1.0,
    blur: float = 1.0,
    noise: float = 0.03,
    background: float = 1.0,
    zoom: float | None = 1.0,
    chunk: int = 128,
) -> FaceSet:
    """A FaceSet of parametric face-like identities, `images_per_identity` nuisance draws of each.

    Knobs (0 turns a nuisance off; all at 0 gives identical images of each identity): yaw / pitch /
    roll are maxima in degrees; light, expression, jitter (scale +-10 %, shift +-7 %) and background
    are strengths in [0, 1]; glasses and occlusion are probabilities per image; blur is the largest
    Gaussian sigma in pixels at 56 px height; noise is the sensor noise std (intensity in [0, 1]).
    `zoom` (> 0) is the framing, not a nuisance: the face's size in the frame as a factor on the
    default framing (1: the head with its hair 71-75 % of the width, neck and background around
    it; about 1.45 fills the frame from hairline to chin as ORL's crops do, docs/recipe.md); None
    is 1, so that a config can leave it null and runs from before the knob existed share its
    protocol.
    `chunk` images are rendered at a time (memory); it changes no byte of the result.
    """
    knobs = dict(
        yaw=yaw, pitch=pitch, roll=roll, light=light, expression=expression, glasses=glasses,
        occlusion=occlusion, jitter=jitter, blur=blur, noise=noise, background=background,
    )  # fmt: skip
    _check(num_identities, images_per_identity, image_size, channels, family_size, chunk, knobs)
    zoom = 1.0 if zoom is None else zoom
    if not (zoom > 0 and math.isfinite(zoom)):
        raise DataError(
            f"synthfaces zoom must be a finite number > 0 (1 = the default framing), got {zoom}"
        )
    h, w = int(image_size[0]), int(image_size[1])
    # texture resolution: a little under the face height in pixels
    size = max(16, round(0.7 * h * zoom))
    bank = _noise_bank(seed, h, w)
    labels = torch.arange(num_identities).repeat_interleave(images_per_identity)
    rank = torch.arange(images_per_identity).repeat(num_identities)
    out = torch.empty(len(labels), channels, h, w, dtype=torch.uint8)
    # identities painted together (their maps take ~36 MB at most), then rendered `chunk` images at a time
    per_block = max(1, min(256, 2**20 // (size * size)))
    for first in range(0, num_identities, per_block):
        ids = torch.arange(first, min(first + per_block, num_identities))
        ident = identity_parameters(ids, seed, family_size, family_spread)
        maps = identity_maps(ident, size)
        if channels == 1:
            maps = maps[:, :-1].contiguous()  # the hair mask only tints colour images
        lo, hi = first * images_per_identity, int(ids[-1] + 1) * images_per_identity
        for start in range(lo, hi, chunk):
            k, r = labels[start : min(start + chunk, hi)], rank[start : min(start + chunk, hi)]
            draws = _uniform(_key(seed, 6, k, r), len(_NUISANCE))
            u = {name: draws[:, j] for j, name in enumerate(_NUISANCE)}
            local = k - first
            p = _per_image({n: v[local] for n, v in ident.items()}, u, knobs, h, zoom)
            sensor = bank.index_select(0, (u["noise_a"] * _BANK).long()).view(-1, 1, h, w)
            image = _render(p, maps.index_select(0, local), size, sensor, h, w, channels, zoom)
            out[start : start + len(k)] = image.clamp_(0, 255).round_().to(torch.uint8)
    return FaceSet(out, labels, [f"face{k:05d}" for k in range(num_identities)])


def _check(
    num_identities, images_per_identity, image_size, channels, family_size, chunk, knobs
) -> None:
    """Clear errors for bad arguments, before anything is drawn."""
    if num_identities < 2 or images_per_identity < 1:
        raise DataError(
            f"synthfaces needs num_identities >= 2 and images_per_identity >= 1, got "
            f"{num_identities} and {images_per_identity} (conf/data/synthfaces.yaml)"
        )
    if len(image_size) != 2 or min(int(s) for s in image_size) < 8:
        raise DataError(
            f"synthfaces image_size must be (height, width), each >= 8 px, got {image_size}"
        )
    if channels not in (1, 3):
        raise DataError(f"synthfaces channels must be 1 (gray) or 3 (RGB), got {channels}")
    if family_size < 1 or chunk < 1:
        raise DataError(
            f"synthfaces family_size and chunk must be >= 1, got {family_size} and {chunk}"
        )
    for name, value in knobs.items():
        if not value >= 0:
            raise DataError(
                f"synthfaces knob {name} must be >= 0, got {value} (data/README.md lists the knobs)"
            )


def sample_sheet(
    path: str, identities: int = 8, images: int = 8, family_size: int = 4, zoom: float = 1.0
) -> None:
    """A PNG of `identities` rows (each `family_size` rows a family of look-alikes) x `images` columns, default knobs."""
    import numpy as np
    from PIL import Image

    h, w = 84, 72
    faces = make_synthfaces(identities, images, (h, w), seed=0, family_size=family_size, zoom=zoom)
    grid = faces.images[:, 0].view(identities, images, h, w).numpy()
    sheet = np.concatenate([np.concatenate(list(row), axis=1) for row in grid], axis=0)
    Image.fromarray(sheet).save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sheet", required=True, help="where to write the sample sheet (PNG)")
    parser.add_argument("--zoom", type=float, default=1.0, help="framing (data/README.md)")
    parser.add_argument("--identities", type=int, default=8, help="rows")
    parser.add_argument("--family-size", type=int, default=4, help="rows per family of look-alikes")
    args = parser.parse_args()
    sample_sheet(args.sheet, args.identities, family_size=args.family_size, zoom=args.zoom)


if __name__ == "__main__":
    main()
