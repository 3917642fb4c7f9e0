"""The thorough proof of the containers lesson: our Sequential, ModuleList and ModuleDict against PyTorch's."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from torch import nn

import torchenstein.nn.containers as lesson
from torchenstein.challenges import challenges_in
from torchenstein.nn.containers import (
    ModuleDict,
    ModuleList,
    ResidualStack,
    Sequential,
    Tower,
    check_ResidualStack,
    check_sequential_mlp,
    plot_registration,
    sequential_mlp,
)

LIST_LIKE = [(Sequential, nn.Sequential), (ModuleList, nn.ModuleList)]


def layout(module: nn.Module) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    return [(name, tuple(t.shape), t.dtype) for name, t in module.state_dict().items()]


def entries(container: nn.Module) -> list[tuple[str, int]]:
    """The container's own filing cabinet: names and the identity of what is filed under them."""
    return [(name, id(module)) for name, module in container._modules.items()]


def chain(dtype: torch.dtype = torch.float32) -> list[nn.Module]:
    return [nn.Linear(3, 5, dtype=dtype), nn.Tanh(), nn.Linear(5, 4, dtype=dtype), nn.LayerNorm(4, dtype=dtype)]


def build_pair(kind: str, seed: int, dtype: torch.dtype) -> tuple[nn.Module, nn.Module]:
    """Our container and PyTorch's, each built from its own fresh modules (different random weights)."""
    torch.manual_seed(seed)
    if kind == "positional":
        return Sequential(*chain(dtype)), nn.Sequential(*chain(dtype))
    if kind == "ordered":
        names = ["inp", "act", "out", "norm"]
        return (
            Sequential(OrderedDict(zip(names, chain(dtype), strict=True))),
            nn.Sequential(OrderedDict(zip(names, chain(dtype), strict=True))),
        )
    # Nested: a dict holding a sequential stem and a list of sequential blocks.
    def nested(seq, lst, dct):
        blocks = lst([seq(nn.Linear(4, 4, dtype=dtype), nn.GELU()) for _ in range(3)])
        return dct({"stem": seq(*chain(dtype)), "blocks": blocks})

    return nested(Sequential, ModuleList, ModuleDict), nested(nn.Sequential, nn.ModuleList, nn.ModuleDict)


def run(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if isinstance(model, (ModuleDict, nn.ModuleDict)):
        x = model["stem"](x)
        for block in model["blocks"]:
            x = x + block(x)
        return x
    return model(x)


@pytest.mark.parametrize("kind", ["positional", "ordered", "nested"])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_same_names_shapes_outputs_and_gradients_as_pytorch(kind, seed, dtype):
    ours, theirs = build_pair(kind, seed, dtype)
    assert layout(ours) == layout(theirs)
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [(n, p.shape) for n, p in theirs.named_parameters()]
    # Strict loading works both ways; after it both compute the same function.
    assert not theirs.load_state_dict(ours.state_dict(), strict=True).missing_keys
    x = torch.randn(6, 3, dtype=dtype, requires_grad=True)
    out_ours, out_theirs = run(ours, x), run(theirs, x)
    torch.testing.assert_close(out_ours, out_theirs)
    grad_x_ours, *grads_ours = torch.autograd.grad(out_ours.square().sum(), [x, *ours.parameters()])
    grad_x_theirs, *grads_theirs = torch.autograd.grad(out_theirs.square().sum(), [x, *theirs.parameters()])
    torch.testing.assert_close(grad_x_ours, grad_x_theirs)
    for g_ours, g_theirs in zip(grads_ours, grads_theirs, strict=True):
        torch.testing.assert_close(g_ours, g_theirs)
    # And back: fresh PyTorch weights load into ours.
    _, fresh = build_pair(kind, seed + 10, dtype)
    assert not ours.load_state_dict(fresh.state_dict(), strict=True).unexpected_keys
    torch.testing.assert_close(run(ours, x), run(fresh, x))


def test_gradcheck_through_our_sequential():
    torch.manual_seed(0)
    model = Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(model, (x,))


def test_printout_and_moves_come_from_nn_module():
    modules = chain()
    assert repr(Sequential(*modules)) == repr(nn.Sequential(*modules))
    ours, _ = build_pair("nested", 0, torch.float32)
    ours.to(torch.float64).eval()
    assert {p.dtype for p in ours.parameters()} == {torch.float64}
    assert not any(m.training for m in ours.modules())


def test_an_empty_sequential_is_the_identity():
    x = torch.randn(2, 3)
    assert Sequential()(x) is x and nn.Sequential()(x) is x
    assert len(Sequential()) == len(ModuleList()) == len(ModuleDict()) == 0


@pytest.mark.parametrize(("ours", "theirs"), LIST_LIKE)
def test_every_index_picks_the_same_module(ours, theirs):
    modules = chain()
    a = ours(*modules) if ours is Sequential else ours(modules)
    b = theirs(*modules) if theirs is nn.Sequential else theirs(modules)
    for i in range(-len(modules), len(modules)):
        assert a[i] is b[i] is modules[i]
    assert list(a) == list(b) == modules and len(a) == len(b) == len(modules)


@pytest.mark.parametrize(("ours", "theirs"), LIST_LIKE)
@pytest.mark.parametrize("idx", [4, -5, 100])
def test_out_of_range_index_is_an_index_error_naming_index_and_length(ours, theirs, idx):
    modules = chain()
    a = ours(*modules) if ours is Sequential else ours(modules)
    b = theirs(*modules) if theirs is nn.Sequential else theirs(modules)
    with pytest.raises(IndexError, match=f"index {idx} is out of range for a {ours.__name__} of length 4"):
        a[idx]
    with pytest.raises(IndexError):
        b[idx]
    with pytest.raises(IndexError, match=f"index {idx} is out of range"):
        a[idx] = nn.ReLU()


@pytest.mark.parametrize(("ours", "theirs"), LIST_LIKE)
@pytest.mark.parametrize("idx", ["0", 1.0, None])
def test_non_integer_index_is_a_type_error(ours, theirs, idx):
    a, b = ours(), theirs()
    a.append(nn.ReLU())
    b.append(nn.ReLU())
    with pytest.raises(TypeError, match="indices must be integers or slices"):
        a[idx]
    with pytest.raises(TypeError):
        b[idx]


@settings(max_examples=40)
@given(
    n=st.integers(0, 5),
    start=st.none() | st.integers(-7, 7),
    stop=st.none() | st.integers(-7, 7),
    step=st.none() | st.integers(-3, 3).filter(bool),
)
def test_slices_match_pytorch(n, start, stop, step):
    modules = [nn.Linear(2, 2) for _ in range(n)]
    piece = slice(start, stop, step)
    # Sequential slices keep their names; ModuleList slices are numbered afresh.
    ours, theirs = Sequential(*modules)[piece], nn.Sequential(*modules)[piece]
    assert type(ours) is Sequential and entries(ours) == entries(theirs)
    ours, theirs = ModuleList(modules)[piece], nn.ModuleList(modules)[piece]
    assert type(ours) is ModuleList and entries(ours) == entries(theirs)
    assert entries(ours) == [(str(i), id(m)) for i, m in enumerate(modules[piece])]


def test_slicing_a_named_sequential_keeps_the_names():
    names = ["a", "b", "c", "d"]
    modules = chain()
    ours = Sequential(OrderedDict(zip(names, modules, strict=True)))
    theirs = nn.Sequential(OrderedDict(zip(names, modules, strict=True)))
    assert entries(ours[1:3]) == entries(theirs[1:3]) == [("b", id(modules[1])), ("c", id(modules[2]))]
    assert layout(ours[::2]) == layout(theirs[::2])


_OPS = st.lists(
    st.tuples(
        st.sampled_from(["append", "extend", "insert", "set", "del", "del-slice", "pop", "iadd", "add", "mul", "imul"]),
        st.integers(-6, 6),
        st.integers(0, 3),
    ),
    max_size=8,
)


def _apply(container, op, where, count, new, length):
    """Apply one list operation; return what it returns (a new container or a popped module), or None."""
    plus = (Sequential if isinstance(container, Sequential) else nn.Sequential)(*new)
    if isinstance(container, (ModuleList, nn.ModuleList)):
        plus = list(new)
    if op == "append" and new:
        container.append(new[0])
    elif op == "extend":
        container.extend(new)
    elif op == "insert" and new:
        # PyTorch's ModuleList.insert only handles 0 <= index <= len (see the differences test).
        container.insert(min(abs(where), length), new[0])
    elif op == "set" and new and length:
        container[where % length] = new[0]
    elif op == "del" and length:
        del container[where % length]
    elif op == "del-slice":
        del container[where::count or 1]
    elif op == "pop" and length:
        return container.pop(where % length)
    elif op == "iadd":
        container += plus
    elif op == "add":
        return container + plus
    elif op == "mul" and count and isinstance(container, (Sequential, nn.Sequential)):
        return container * count
    elif op == "imul" and count and isinstance(container, (Sequential, nn.Sequential)):
        container *= count
    return None


@settings(max_examples=40)
@given(ops=_OPS)
def test_growing_and_shrinking_match_pytorch(ops):
    pool = [nn.Linear(1, 1) for _ in range(40)]
    fresh = iter(pool)
    pairs = [(Sequential(), nn.Sequential()), (ModuleList(), nn.ModuleList())]
    for op, where, count in ops:
        length = len(pairs[0][0])
        new = [next(fresh) for _ in range(count)]
        for ours, theirs in pairs:
            got, expected = (_apply(c, op, where, count, new, length) for c in (ours, theirs))
            assert entries(ours) == entries(theirs), op
            if isinstance(expected, nn.Module) and not isinstance(expected, nn.Linear):
                assert type(got).__name__ == type(expected).__name__ and entries(got) == entries(expected), op
            else:
                assert got is expected, op
        if len(pairs[0][0]) > 12:  # keep the containers small
            pairs = [(Sequential(), nn.Sequential()), (ModuleList(), nn.ModuleList())]


# Every public method of PyTorch's containers (as of torch 2.13), and those we deliberately leave out.
_NOT_OURS = {"_get_item_by_idx", "_get_abs_string_index", "__annotations__", "__doc__", "__module__", "__dict__",
             "__weakref__", "__orig_bases__", "__parameters__", "_version", "__firstlineno__", "__static_attributes__",
             "__call__", "__slotnames__"}


@pytest.mark.parametrize(("ours", "theirs"), [*LIST_LIKE, (ModuleDict, nn.ModuleDict)], ids=["Sequential", "ModuleList", "ModuleDict"])
def test_every_public_method_of_pytorchs_container_is_ours_too(ours, theirs):
    wanted = {name for name, value in vars(theirs).items() if callable(value) and name not in _NOT_OURS}
    # The one deliberate omission: ModuleList's compressed printout (see the differences test).
    missing = wanted - set(vars(ours)) - ({"__repr__"} if ours is ModuleList else set())
    assert not missing, f"{ours.__name__} lacks {sorted(missing)}"


def test_slicing_then_appending_overwrites_the_last_layer_in_both():
    for seq in (Sequential, nn.Sequential):
        layers = [nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2)]
        tail = seq(*layers)[1:]
        assert list(tail._modules) == ["1", "2"]
        tail.append(nn.Softmax(dim=-1))
        assert len(tail) == 2 and [type(m) for m in tail] == [nn.ReLU, nn.Softmax]
        tail = seq(*layers)[1:]
        tail += seq(nn.Tanh())
        assert [type(m) for m in tail] == [nn.ReLU, nn.Tanh]
        fixed = seq(*seq(*layers)[1:], nn.Softmax(dim=-1))
        assert list(fixed._modules) == ["0", "1", "2"] and fixed[1] is layers[2]


def test_deleting_from_a_named_sequential_renumbers_it_as_pytorch_does():
    names = ["a", "b", "c", "d"]
    modules = chain()
    ours = Sequential(OrderedDict(zip(names, modules, strict=True)))
    theirs = nn.Sequential(OrderedDict(zip(names, modules, strict=True)))
    for container in (ours, theirs):
        popped = container.pop(slice(1, 3))
        assert list(popped._modules) == ["b", "c"]
    assert entries(ours) == entries(theirs) == [("0", id(modules[0])), ("1", id(modules[3]))]


def test_repetition_shares_the_modules_and_refuses_bad_factors():
    layer = nn.Linear(2, 2)
    for seq in (Sequential, nn.Sequential):
        assert entries(seq(layer) * 3) == entries(3 * seq(layer)) == [(str(i), id(layer)) for i in range(3)]
        grown = seq(layer, nn.ReLU())
        grown *= 2
        assert [id(m) for m in grown] == [id(layer), id(grown[1])] * 2
        with pytest.raises(ValueError):
            seq(layer) * 0
        with pytest.raises(TypeError):
            seq(layer) * 1.5
        with pytest.raises(ValueError):
            seq(layer) + [layer]
    with pytest.raises(ValueError, match="join a Sequential only with another Sequential, got list"):
        Sequential(layer) + [layer]
    with pytest.raises(TypeError, match="unsupported operand type.*'float'"):
        Sequential(layer) * 1.5


def test_dir_hides_numeric_names_like_pytorch():
    for container in (Sequential(nn.ReLU(), nn.Tanh()), ModuleList([nn.ReLU()]), nn.Sequential(nn.ReLU()), nn.ModuleList([nn.ReLU()])):
        names = dir(container)
        assert not any(name.isdigit() for name in names) and "append" in names


def test_module_dict_pop_and_clear_match_pytorch():
    modules = [nn.Linear(1, 1) for _ in range(3)]
    ours = ModuleDict({k: m for k, m in zip("abc", modules, strict=True)})
    theirs = nn.ModuleDict({k: m for k, m in zip("abc", modules, strict=True)})
    assert ours.pop("b") is theirs.pop("b") is modules[1]
    assert entries(ours) == entries(theirs)
    with pytest.raises(KeyError):
        ours.pop("b")
    with pytest.raises(KeyError):
        theirs.pop("b")
    ours.clear()
    theirs.clear()
    assert len(ours) == len(theirs) == 0 and list(ours.parameters()) == []


class TestWhereItDiffersFromPyTorch:
    """Each bullet of the lesson's note, pinned."""

    def test_none_is_an_empty_slot_in_pytorch_and_refused_in_ours(self):
        assert len(nn.Sequential(nn.ReLU(), None)) == 2
        with pytest.raises(TypeError, match="got NoneType"):
            Sequential(nn.ReLU(), None)

    def test_inserting_a_non_module_into_a_sequential(self):
        with pytest.raises(AssertionError):
            nn.Sequential(nn.ReLU()).insert(0, 3)
        with pytest.raises(TypeError, match="the module at index 0 must be an nn.Module instance, got int"):
            Sequential(nn.ReLU()).insert(0, 3)

    def test_module_list_insert_outside_zero_to_len(self):
        theirs = nn.ModuleList([nn.ReLU(), nn.Tanh()])
        theirs.insert(5, nn.GELU())
        assert list(theirs._modules) == ["0", "1", "5"]  # a gap in the numbering
        with pytest.raises(KeyError):
            nn.ModuleList([nn.ReLU(), nn.Tanh()]).insert(-1, nn.GELU())
        with pytest.raises(IndexError, match="insert index 5 is out of range for a ModuleList of length 2"):
            ModuleList([nn.ReLU(), nn.Tanh()]).insert(5, nn.GELU())

    @pytest.mark.parametrize("operation", ["insert", "imul"])
    def test_position_based_operations_on_a_named_sequential_are_key_errors(self, operation):
        def run(container):
            if operation == "insert":
                container.insert(0, nn.GELU())
            else:
                container *= 2

        for make in (lambda seq: seq(OrderedDict(a=nn.ReLU(), b=nn.Tanh())), lambda seq: seq(nn.ReLU(), nn.Tanh())[1:]):
            with pytest.raises(KeyError):
                run(make(nn.Sequential))
            ours = make(Sequential)
            before = entries(ours)
            with pytest.raises(KeyError, match="needs modules named by position"):
                run(ours)
            assert entries(ours) == before  # refused before anything moved

    def test_inserting_at_the_end_of_a_named_sequential_works_in_both(self):
        named = OrderedDict(a=nn.ReLU(), b=nn.Tanh())
        ours, theirs = Sequential(named), nn.Sequential(named)
        gelu = nn.GELU()
        ours.insert(2, gelu)
        theirs.insert(2, gelu)
        assert entries(ours) == entries(theirs) and list(ours._modules) == ["a", "b", "2"]

    def test_plus_takes_either_sequential(self):
        theirs = nn.Sequential(nn.ReLU())
        assert len(Sequential(nn.Tanh()) + theirs) == 2
        with pytest.raises(ValueError):
            theirs + Sequential(nn.Tanh())

    def test_module_list_printout_is_not_compressed(self):
        layers = [nn.Linear(2, 2) for _ in range(3)]
        assert "(0-2): 3 x Linear" in repr(nn.ModuleList(layers))
        assert repr(ModuleList(layers)).count("Linear(in_features=2") == 3


@pytest.mark.parametrize("ours", [Sequential, ModuleList])
def test_negative_insert_works_like_list_insert(ours):
    modules = [nn.Linear(1, 1) for _ in range(4)]
    reference = list(modules[:3])
    container = ours(*modules[:3]) if ours is Sequential else ours(modules[:3])
    container.insert(-1, modules[3])
    reference.insert(-1, modules[3])
    assert list(container) == reference
    assert list(container._modules) == ["0", "1", "2", "3"]
    with pytest.raises(IndexError, match=f"insert index 9 is out of range for a {ours.__name__} of length 4"):
        container.insert(9, nn.ReLU())
    with pytest.raises(IndexError, match="insert index -5 is out of range"):
        container.insert(-5, nn.ReLU())


def test_sequential_insert_matches_pytorch_including_negative():
    modules = [nn.Linear(1, 1) for _ in range(5)]
    for index in range(-3, 4):
        ours, theirs = Sequential(*modules[:3]), nn.Sequential(*modules[:3])
        ours.insert(index, modules[4])
        theirs.insert(index, modules[4])
        assert entries(ours) == entries(theirs)


def test_appending_and_extending_return_the_container():
    seq, lst = Sequential(), ModuleList()
    assert seq.append(nn.ReLU()) is seq and seq.extend([nn.ReLU()]) is seq and seq.insert(0, nn.ReLU()) is seq
    assert lst.append(nn.ReLU()) is lst and lst.extend([nn.ReLU()]) is lst and lst.insert(0, nn.ReLU()) is None
    assert ModuleList(nn.Linear(1, 1) for _ in range(3))[2].in_features == 1  # a generator is fine


@pytest.mark.parametrize(
    ("build", "torch_build", "message"),
    [
        (lambda: Sequential(nn.ReLU(), 3), lambda: nn.Sequential(nn.ReLU(), 3), "module at index 1 must be an nn.Module instance, got int"),
        (lambda: Sequential(nn.ReLU), lambda: nn.Sequential(nn.ReLU), r"got the class ReLU; create one first: ReLU\(\)"),
        (lambda: Sequential({"a": nn.ReLU()}), lambda: nn.Sequential({"a": nn.ReLU()}), "got dict .to name the modules of a Sequential, pass an OrderedDict"),
        (lambda: Sequential(OrderedDict(a=nn.ReLU(), b="x")), lambda: nn.Sequential(OrderedDict(a=nn.ReLU(), b="x")), "module at key 'b' must be an nn.Module instance, got str"),
        (lambda: ModuleList([nn.ReLU(), nn.ReLU(), None]), lambda: ModuleList([nn.ReLU(), nn.ReLU(), None]), "ModuleList: the module at index 2 must be an nn.Module instance, got NoneType"),
        (lambda: ModuleList(5), lambda: nn.ModuleList(5), "ModuleList.extend expects an iterable of modules, got int"),
        (lambda: Sequential().extend(5), lambda: nn.Sequential().extend(5), "Sequential.extend expects an iterable of modules, got int"),
        (lambda: ModuleList().append(torch.zeros(2)), lambda: nn.ModuleList().append(torch.zeros(2)), "got Tensor"),
        (lambda: ModuleDict({"head": nn.Linear}), lambda: nn.ModuleDict({"head": nn.Linear}), "module at key 'head' must be an nn.Module instance, got the class Linear"),
        (lambda: ModuleDict({0: nn.ReLU()}), lambda: nn.ModuleDict({0: nn.ReLU()}), "ModuleDict keys must be strings, got 0 of type int"),
        (lambda: ModuleDict(3), lambda: nn.ModuleDict(3), "ModuleDict.update expects a mapping or .key, module. pairs, got int"),
        (lambda: ModuleDict([3]), lambda: nn.ModuleDict([3]), "element #0 must be a .key, module. pair, got int"),
    ],
)
def test_bad_modules_are_type_errors_that_say_where(build, torch_build, message):
    with pytest.raises(TypeError, match=message):
        build()
    with pytest.raises(TypeError):
        torch_build()


def test_a_pair_of_the_wrong_length_is_a_value_error():
    with pytest.raises(ValueError, match="element #1 must be a .key, module. pair, got 3 items"):
        ModuleDict([("a", nn.ReLU()), ("b", nn.ReLU(), 1)])
    with pytest.raises(ValueError):
        nn.ModuleDict([("a", nn.ReLU()), ("b", nn.ReLU(), 1)])


@pytest.mark.parametrize("key", ["a.b", "", "type", "forward", "keys"])
def test_bad_dict_keys_are_key_errors_as_in_pytorch(key):
    with pytest.raises(KeyError):
        ModuleDict({key: nn.ReLU()})
    with pytest.raises(KeyError):
        nn.ModuleDict({key: nn.ReLU()})


@pytest.mark.parametrize(
    "make",
    [
        lambda ms: dict(ms),
        lambda ms: OrderedDict(ms),
        lambda ms: list(ms),
        lambda ms: iter([list(pair) for pair in ms]),
        lambda ms: nn.ModuleDict(ms),
        lambda ms: ModuleDict(ms),
    ],
    ids=["dict", "OrderedDict", "pairs", "list-pairs", "nn.ModuleDict", "ModuleDict"],
)
def test_module_dict_construction_matches_pytorch(make):
    pairs = [("zeta", nn.Linear(2, 3)), ("alpha", nn.ReLU()), ("mid", nn.Linear(3, 1))]
    ours, theirs = ModuleDict(make(pairs)), nn.ModuleDict(pairs)
    assert entries(ours) == entries(theirs) == [(k, id(m)) for k, m in pairs]  # insertion order, not sorted
    assert list(ours) == list(ours.keys()) == list(theirs.keys()) == ["zeta", "alpha", "mid"]
    assert [id(m) for m in ours.values()] == [id(m) for m in theirs.values()]
    assert [(k, id(m)) for k, m in ours.items()] == [(k, id(m)) for k, m in theirs.items()]
    assert layout(ours) == layout(theirs)


def test_module_dict_get_set_delete_and_update_match_pytorch():
    extra = [nn.Linear(1, 1) for _ in range(4)]
    ours, theirs = ModuleDict({"a": extra[0]}), nn.ModuleDict({"a": extra[0]})
    for d in (ours, theirs):
        d["b"] = extra[1]
        d["a"] = extra[2]  # overwriting keeps the key's place
        d.update({"c": extra[3], "b": extra[0]})
        del d["c"]
    assert entries(ours) == entries(theirs) == [("a", id(extra[2])), ("b", id(extra[0]))]
    assert "a" in ours and "c" not in ours and 3 not in ours and len(ours) == 2
    assert ours["a"] is ours.a is theirs["a"]
    with pytest.raises(KeyError, match=r"ModuleDict has no key 'c'; its keys are \['a', 'b'\]"):
        ours["c"]
    with pytest.raises(KeyError):
        theirs["c"]
    with pytest.raises(KeyError):
        del ours["c"]


@pytest.mark.parametrize("container", [ModuleList([nn.ReLU()]), ModuleDict({"a": nn.ReLU()})])
def test_lists_and_dicts_have_no_forward(container):
    with pytest.raises(NotImplementedError, match=r'Module \[Module(List|Dict)\] is missing the required "forward"'):
        container(torch.zeros(1))


def test_nested_names_are_attribute_paths():
    tower = Tower(width=4, num_blocks=3, num_classes=2)
    names = [name for name, _ in tower.named_parameters()]
    assert "blocks.2.mlp.2.bias" in names and names[-2:] == ["heads.score.weight", "heads.score.bias"]
    for name, parameter in tower.named_parameters():
        obj = tower
        for part in name.split("."):
            obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
        assert obj is parameter
    assert len(names) == 3 * 6 + 4
    outputs = tower(torch.randn(2, 7, 4))
    assert outputs["label"].shape == (2, 7, 2) and outputs["score"].shape == (2, 7, 1)


def test_tower_and_block_edges():
    x = torch.randn(3, 4)
    bare = Tower(num_blocks=0)
    assert len(bare.blocks) == 0
    torch.testing.assert_close(bare(x)["label"], bare.heads["label"](x))
    tower = Tower(width=4, num_blocks=1)
    block = tower.blocks[0]
    assert isinstance(block, nn.ModuleDict) and list(block) == ["norm", "mlp"]
    features = x + block.mlp(nn.functional.layer_norm(x, (4,), block.norm.weight, block.norm.bias))
    torch.testing.assert_close(tower(x)["score"], tower.heads.score(features))
    for kwargs, message in (({"width": 0}, "width must be an int of at least 1, got 0"),
                            ({"num_blocks": -1}, "num_blocks must be an int of at least 0, got -1"),
                            ({"num_classes": 0}, "num_classes must be an int of at least 1, got 0")):
        with pytest.raises(ValueError, match=message):
            Tower(**kwargs)


@pytest.mark.parametrize(("depth", "width"), [(1, 2), (3, 8)])
def test_the_registration_figure_counts_what_forward_uses(depth, width):
    used_by_hidden = depth * (width * width + width)
    head = width + 1
    x = torch.randn(2, width)
    for label, model in lesson._registration_variants(depth, width).items():
        used = sum(t.numel() for t in lesson._leaf_tensors(model(x)))
        registered = sum(p.numel() for p in model.parameters())
        assert used == used_by_hidden + head, label
        assert registered == (used if label.startswith("nn.") else head), label


def test_a_plain_list_is_never_stepped_and_a_module_list_is():
    variants = lesson._registration_variants(2, 3)
    for label in ("plain list", "nn.ModuleList", "plain dict", "nn.ModuleDict"):
        model = variants[label]
        hidden = list(model.layers.values() if hasattr(model.layers, "values") else model.layers)
        before = [layer.weight.detach().clone() for layer in hidden]
        optimiser = torch.optim.SGD(model.parameters(), lr=0.5)
        model(torch.randn(4, 3)).square().sum().backward()
        optimiser.step()
        moved = [not torch.equal(layer.weight, old) for layer, old in zip(hidden, before, strict=True)]
        assert all(moved) if label.startswith("nn.") else not any(moved), label
        assert len(model.state_dict()) == (6 if label.startswith("nn.") else 2), label


def test_plot_registration():
    fig = plot_registration(depth=2, width=3)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()][:2] == ["plain list", "nn.ModuleList"]
    with pytest.raises(ValueError, match="depth must be an int of at least 1, got 0"):
        plot_registration(depth=0, width=3)


def test_the_lesson_defines_both_challenges():
    assert set(challenges_in(lesson)) == {"sequential_mlp", "ResidualStack"}


def test_solutions_pass_their_checkers():
    assert check_sequential_mlp(sequential_mlp) is None
    assert check_ResidualStack(ResidualStack) is None


def _mlp_with_trailing_activation(sizes, activation=nn.ReLU):
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), activation()]
    return nn.Sequential(*layers)


def _mlp_with_shared_activation(sizes, activation=nn.ReLU):
    sizes = lesson._check_sizes(sizes)
    act = activation()
    layers = [nn.Linear(sizes[0], sizes[1])]
    for a, b in zip(sizes[1:-1], sizes[2:], strict=True):
        layers += [act, nn.Linear(a, b)]
    return nn.Sequential(*layers)


def _mlp_as_module_list(sizes, activation=nn.ReLU):
    return nn.ModuleList(sequential_mlp(sizes, activation))


def _mlp_without_validation(sizes, activation=nn.ReLU):
    return sequential_mlp(sizes, activation) if len(sizes) >= 2 and min(sizes) >= 1 else nn.Sequential()


@pytest.mark.parametrize(
    ("attempt", "message"),
    [
        (_mlp_with_trailing_activation, "expected layers"),
        (_mlp_with_shared_activation, "same object"),
        (_mlp_as_module_list, "return an nn.Sequential"),
        (_mlp_without_validation, r"_mlp_without_validation\(\[\],\) should raise ValueError"),
    ],
)
def test_sequential_mlp_checker_rejects_wrong_attempts(attempt, message):
    with pytest.raises(AssertionError, match=message):
        check_sequential_mlp(attempt)


class _PlainListStack(ResidualStack):
    def __init__(self, num_blocks, width):
        nn.Module.__init__(self)
        self.blocks = [nn.Linear(width, width) for _ in range(num_blocks)]


class _SharedBlockStack(ResidualStack):
    def __init__(self, num_blocks, width):
        super().__init__(num_blocks, width)
        self.blocks = nn.ModuleList([nn.Linear(width, width)] * num_blocks)


class _NoSkipStack(ResidualStack):
    def forward(self, x):
        for block in self.blocks:
            x = torch.relu(block(x))
        return x


class _UncheckedStack(nn.Module):
    def __init__(self, num_blocks, width):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(width, width) for _ in range(max(num_blocks, 0))])

    def forward(self, x):
        for block in self.blocks:
            x = x + torch.relu(block(x))
        return x


@pytest.mark.parametrize(
    ("attempt", "message"),
    [
        (_PlainListStack, "must be an nn.ModuleList"),
        (_SharedBlockStack, "distinct layers"),
        (_NoSkipStack, "not x . relu"),
        (_UncheckedStack, r"_UncheckedStack\(-1, 4\) should raise ValueError"),
    ],
)
def test_residual_stack_checker_rejects_wrong_attempts(attempt, message):
    with pytest.raises(AssertionError, match=message):
        check_ResidualStack(attempt)


@pytest.mark.parametrize("sizes", [[3, 5, 2], (4, 4), range(1, 5)])
def test_sequential_mlp_layout(sizes):
    model = sequential_mlp(sizes, activation=nn.GELU)
    n = len(list(sizes))
    assert len(model) == 2 * n - 3
    assert list(model.state_dict())[::2] == [f"{2 * i}.weight" for i in range(n - 1)]
    with pytest.raises(ValueError, match="sizes must be at least two positive integers, got \\[2, True\\]"):
        sequential_mlp([2, True])
