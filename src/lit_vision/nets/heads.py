"""Finding a net's classifier head(s), so parameter groups, freezing and init can name them.

Every lit_vision net sets ``head_name`` (the dotted path of its final classifier) and, when it has
auxiliary classifiers (Inception v3, GoogLeNet), ``aux_head_names``. Configs may write the word ``head``
wherever a module prefix is expected (``lr_multipliers: {head: 10}``, ``init.exclude: [head]``); it
stands for all of these paths. Nets from elsewhere fall back to their last ``nn.Linear``.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

HEAD_ALIAS = "head"


def head_module_names(net: nn.Module) -> list[str]:
    """Dotted paths (relative to ``net``) of the net's classifier head and auxiliary heads."""
    main = getattr(net, "head_name", None)
    if main is None:
        linears = [name for name, module in net.named_modules() if isinstance(module, nn.Linear)]
        if not linears:
            raise ValueError(
                f"{type(net).__name__} has no `head_name` attribute and no nn.Linear layer to use as its head"
            )
        main = linears[-1]
    names = [str(main), *(str(n) for n in getattr(net, "aux_head_names", ()) or ())]
    known = dict(net.named_modules())
    missing = [n for n in names if n not in known]
    if missing:
        raise ValueError(f"{type(net).__name__} names head module(s) {missing} that it does not have")
    return names


def expand_head_alias(prefixes: Iterable[str], net: nn.Module, net_prefix: str = "") -> list[str]:
    """Replace the alias ``head`` (or ``<net_prefix>head``) by the net's head paths (main + auxiliary).

    ``net_prefix`` is how the net is named inside its owner (``net.`` in a task), so ``net.head`` written
    by a user also resolves for nets whose head is called ``fc`` or ``classifier``.
    """
    out: list[str] = []
    for prefix in prefixes:
        bare = prefix[len(net_prefix) :] if net_prefix and prefix.startswith(net_prefix) else prefix
        if bare == HEAD_ALIAS:
            out.extend(net_prefix + name for name in head_module_names(net))
        else:
            out.append(prefix)
    return list(dict.fromkeys(out))


def is_under(name: str, prefixes: Iterable[str]) -> bool:
    """True when the dotted ``name`` equals one of ``prefixes`` or lies inside one of them."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)
