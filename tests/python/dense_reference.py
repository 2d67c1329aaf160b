"""Dense float64 NumPy references of KeOps operations shared by the tests (arrays broadcast on leading dims)."""
import numpy as np


def sq(a):
    return (a * a).sum(-1, keepdims=True)


def bcast(*arrays):
    lead = np.broadcast_shapes(*(a.shape[:-1] for a in arrays))
    return [np.broadcast_to(a, lead + a.shape[-1:]) for a in arrays]


def weighted(sw, f):
    d = f.shape[-1]
    if sw.shape[-1] == d * d and d > 1:
        sw, f = bcast(sw, f)
        return np.einsum("...k,...kl,...l->...", f, sw.reshape(sw.shape[:-1] + (d, d)), f)[..., None]
    return (sw * f * f).sum(-1, keepdims=True)


def keops_round(a, d=0):
    scale = 10.0**d
    return np.trunc(a * scale + np.copysign(0.5, a)) / scale


def bspline(knots, x, k):
    knots, x = bcast(knots, x)
    x = x[..., 0]
    basis = [((knots[..., i] <= x) & (x < knots[..., i + 1])).astype(float) for i in range(knots.shape[-1] - 1)]
    for d in range(1, k + 1):
        nxt = []
        for i in range(knots.shape[-1] - d - 1):
            den1, den2 = knots[..., i + d] - knots[..., i], knots[..., i + d + 1] - knots[..., i + 1]
            with np.errstate(divide="ignore", invalid="ignore"):
                left = np.where(den1 == 0, 0, (x - knots[..., i]) / den1) * basis[i]
                right = np.where(den2 == 0, 0, (knots[..., i + d + 1] - x) / den2) * basis[i + 1]
            nxt.append(left + right)
        basis = nxt
    return np.stack(basis, -1)


def softdtw(x, y, gamma):
    x, y, gamma = bcast(x, y, gamma)
    g = gamma[..., 0]
    n, m = x.shape[-1], y.shape[-1]
    R = np.full(x.shape[:-1] + (n + 1, m + 1), np.inf)
    R[..., 0, 0] = 0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            prev = np.stack([R[..., i - 1, j - 1], R[..., i - 1, j], R[..., i, j - 1]], -1)
            lo = prev.min(-1)
            soft = lo - g * np.log(np.exp(-(prev - lo[..., None]) / g[..., None]).sum(-1))
            R[..., i, j] = (x[..., i - 1] - y[..., j - 1]) ** 2 + soft
    return R[..., n, m][..., None]


def tensordot(a, b, da, db, ca, cb, perm=None):
    a, b = bcast(a, b)
    lead = a.shape[:-1]
    a, b = a.reshape((-1,) + tuple(da)), b.reshape((-1,) + tuple(db))
    out = np.stack([np.tensordot(a[k], b[k], (ca, cb)) for k in range(a.shape[0])])
    if perm is not None:  # KeOps's rule: axis k of the tensordot result moves to position perm[k]
        out = out.transpose([0] + [int(q) + 1 for q in np.argsort(perm)])
    return out.reshape(lead + (-1,))


def kron(a, b, da, db):
    a, b = bcast(a, b)
    lead = a.shape[:-1]
    a, b = a.reshape((-1,) + tuple(da)), b.reshape((-1,) + tuple(db))
    return np.stack([np.kron(a[k], b[k]).ravel() for k in range(a.shape[0])]).reshape(lead + (-1,))


def argext(a, fn):
    return fn(a, axis=-1)[..., None].astype(float)


def cat(*arrays):
    return np.concatenate(bcast(*arrays), -1)


def cplx(a):
    return a[..., 0::2] + 1j * a[..., 1::2]


def interleave(zc):
    out = np.empty(zc.shape[:-1] + (2 * zc.shape[-1],))
    out[..., 0::2], out[..., 1::2] = zc.real, zc.imag
    return out
