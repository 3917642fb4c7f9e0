"""The course order: every part and every lesson, in the order they are taught.

This is the one place the order lives. The site's navigation, the course map and the tests all read
it: adding a lesson means writing its module and adding one `Lesson` line here.

A lesson is a module of this package whose docstring opens with a level-one Markdown title (``# ...``).
Its page lives at ``<part>/<module>/`` on the site, and its annotated source at
``<part>/<module>/source/``.

Examples:
    >>> from torchenstein.course import COURSE, lessons
    >>> COURSE[1].title
    'Tensors: the primordial ooze'
    >>> lessons()[0].module
    'torchenstein.laboratory.getting_started'
    >>> lessons()[1].url
    'tensors/creation/'
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "torchenstein"


@dataclass(frozen=True)
class Lesson:
    """One lesson: a module of the package and the title it carries in the navigation.

    Args:
        module: the dotted module path, ``torchenstein.<part>.<name>``.
        title: the short title shown in the navigation and on the course map.
        summary: one sentence for the course map.
    """

    module: str
    title: str
    summary: str

    @property
    def part_slug(self) -> str:
        """The package folder the lesson lives in, which is also its part's slug."""
        return self.module.split(".")[1]

    @property
    def name(self) -> str:
        """The module's own name, ``creation`` for ``torchenstein.tensors.creation``."""
        return self.module.rsplit(".", 1)[1]

    @property
    def url(self) -> str:
        """The lesson page's address relative to the site root."""
        return f"{self.part_slug}/{self.name}/"

    @property
    def page(self) -> str:
        """The lesson page's path among the site's documentation files."""
        return f"{self.part_slug}/{self.name}/index.md"

    @property
    def notebook(self) -> str:
        """The path of the lesson's Jupyter notebook among the documentation files."""
        return f"{self.part_slug}/{self.name}/{self.name}.ipynb"

    @property
    def source_page(self) -> str:
        """The path of the lesson's annotated source view among the documentation files."""
        return f"{self.part_slug}/{self.name}/source.md"


@dataclass(frozen=True)
class Lab:
    """One lab: a longer experiment than a doctest can hold, run once and shown with its outputs.

    A lab's source is a percent-format script (``# %%`` cells) at ``labs/<part>/<name>.py`` in the
    repository; ``torchenstein lab <name>`` executes it and writes the notebook, outputs included, to
    ``docs/labs/<part>/<name>.ipynb``, where the site renders it as a page. Nothing runs at build time.

    Args:
        part_slug: the part the lab belongs to, ``training`` for Part 3.
        name: the script's name without ``.py``.
        title: the short title shown in the navigation and on the course map.
        summary: one sentence for the course map.
    """

    part_slug: str
    name: str
    title: str
    summary: str

    @property
    def script(self) -> str:
        """The lab's source, relative to the repository root."""
        return f"labs/{self.part_slug}/{self.name}.py"

    @property
    def page(self) -> str:
        """The executed notebook's path among the documentation files, which is also the lab's page."""
        return f"labs/{self.part_slug}/{self.name}.ipynb"

    @property
    def url(self) -> str:
        """The lab page's address relative to the site root."""
        return f"labs/{self.part_slug}/{self.name}/"


@dataclass(frozen=True)
class Part:
    """A part of the course: a folder of the package with lessons, or one still to be written.

    Args:
        number: the part's place in the course: 0 for the laboratory, then 1, 2, ...
        slug: the subpackage of ``torchenstein`` that holds its lessons.
        title: the part's title.
        summary: a paragraph for the home page and the course map.
        topics: what the part covers, in the order the course will teach it.
        lessons: the lessons written so far, in teaching order.
        labs: the part's labs, shown after its lessons.
    """

    number: int
    slug: str
    title: str
    summary: str
    topics: tuple[str, ...]
    lessons: tuple[Lesson, ...] = field(default=())
    labs: tuple[Lab, ...] = field(default=())


COURSE: tuple[Part, ...] = (
    Part(
        0,
        "laboratory",
        "The laboratory: before the first experiment",
        "Before the first experiment, the Professor checks the instruments: which PyTorch you have, its "
        "threads and devices, a first tensor on the best device, an honest stopwatch, and how to read "
        "every part of these pages.",
        (
            "checking the installation: version, build, threads and devices",
            "a first tensor on the best device",
            "timing a matrix product honestly",
            "reading the pages: apparatus, notebooks, labs, challenges",
            "the torchenstein command",
        ),
        (
            Lesson(
                "torchenstein.laboratory.getting_started",
                "Getting started",
                "Check your PyTorch, its threads and devices, summon a first tensor on the best device, time "
                "a matrix product honestly, and learn to read every part of these pages.",
            ),
        ),
    ),
    Part(
        1,
        "tensors",
        "Tensors: the primordial ooze",
        "Everything a network is made of is a tensor. We summon them, cut them apart, reshape their very "
        "memory and learn which numbers they can and cannot hold.",
        (
            "creating tensors",
            "indexing, slicing and assembly",
            "storage, strides and views",
            "dtypes and devices",
            "broadcasting",
            "element-wise maths and reductions",
            "matrix multiplication",
            "einsum",
            "autograd",
            "gradient accumulation",
        ),
        (
            Lesson(
                "torchenstein.tensors.creation",
                "Summoning tensors",
                "Every way to bring a tensor into being, and the four attributes it is born with.",
            ),
            Lesson(
                "torchenstein.tensors.surgery",
                "Tensor surgery and assembly",
                "Indexing, slicing, gathering and stitching tensors together, and which cuts share memory.",
            ),
            Lesson(
                "torchenstein.tensors.metamorphosis",
                "Tensor metamorphosis",
                "Storage, strides and contiguity: how view, reshape, permute and expand bend a tensor.",
            ),
            Lesson(
                "torchenstein.tensors.dtypes",
                "Dtypes and devices",
                "What float32, float16 and bfloat16 can hold, how types promote, and where tensors live.",
            ),
            Lesson(
                "torchenstein.tensors.broadcasting",
                "Broadcasting",
                "How shapes stretch to meet each other, and the silent (n,) against (n, 1) bug.",
            ),
            Lesson(
                "torchenstein.tensors.elementwise",
                "Elemental tensor alchemy",
                "Element-wise maths, reductions, in-place operations and a softmax that never overflows.",
            ),
            Lesson(
                "torchenstein.tensors.matmul",
                "Matrix multiplication",
                "mm, bmm, matmul and @: their rules, their cost, and a matmul written from scratch.",
            ),
            Lesson(
                "torchenstein.tensors.einsum",
                "Einstein summation",
                "One notation for dot, outer, matmul, trace and transpose, and an einsum of our own.",
            ),
            Lesson(
                "torchenstein.tensors.einsum_advanced",
                "Advanced einsum",
                "Many operands, projections folded into one contraction, contraction order and rearranging axes.",
            ),
            Lesson(
                "torchenstein.tensors.autograd",
                "Autograd: ghosts in the machine",
                "The graph behind every gradient, and a reverse-mode engine built from scratch.",
            ),
            Lesson(
                "torchenstein.tensors.accumulation",
                "Gradient accumulation",
                "Many small batches that add up to one big one, exactly, and the traps on the way.",
            ),
        ),
    ),
    Part(
        2,
        "nn",
        "torch.nn: building brains",
        "Every building block of a modern network written from scratch as a real nn.Module and proved "
        "equal to PyTorch's own: linear layers, activations, embeddings, normalisation and losses.",
        (
            "nn.Module, parameters and buffers",
            "Sequential, ModuleList and ModuleDict",
            "linear layers",
            "activation functions",
            "dropout",
            "embeddings",
            "positional encoding",
            "BatchNorm and LayerNorm",
            "RMSNorm",
            "train and eval modes",
            "loss functions",
        ),
        (
            Lesson(
                "torchenstein.nn.modules",
                "Building brains with nn.Module",
                "Parameters, buffers and submodules, and the registration trick behind them, rebuilt by hand.",
            ),
            Lesson(
                "torchenstein.nn.containers",
                "Franken-stacking",
                "Sequential, ModuleList and ModuleDict, and the plain Python list that forgets its parameters.",
            ),
            Lesson(
                "torchenstein.nn.linear",
                "Linear layers",
                "The humblest layer from scratch, initialised as PyTorch does, and the Q/K/V projections.",
            ),
            Lesson(
                "torchenstein.nn.activations",
                "Activation elixirs",
                "ReLU, GELU, SiLU, SwiGLU and friends, their curves and their derivatives.",
            ),
            Lesson(
                "torchenstein.nn.dropout",
                "Dropout",
                "Inverted dropout from scratch, its statistics, and why it sleeps in eval mode.",
            ),
            Lesson(
                "torchenstein.nn.embeddings",
                "Embeddings",
                "A lookup table that is secretly a one-hot matmul, padding_idx, and tied output weights.",
            ),
            Lesson(
                "torchenstein.nn.positional",
                "Positional encoding",
                "Telling a Transformer where each token sits: sinusoids and learned positions.",
            ),
            Lesson(
                "torchenstein.nn.normalization",
                "Normalisation",
                "BatchNorm and LayerNorm from scratch, running statistics and all.",
            ),
            Lesson(
                "torchenstein.nn.rmsnorm",
                "RMSNorm",
                "LayerNorm without the mean, and why modern language models prefer it.",
            ),
            Lesson(
                "torchenstein.nn.modes",
                "Train vs eval",
                "Which modules behave differently in training, and why eval() is not no_grad().",
            ),
            Lesson(
                "torchenstein.nn.losses",
                "Loss potions",
                "MSE, L1, Huber, binary and multi-class cross-entropy, from scratch and stable.",
            ),
            Lesson(
                "torchenstein.nn.targets",
                "Inputs and targets",
                "Logits or probabilities, class indices or distributions: the shapes and dtypes losses expect.",
            ),
            Lesson(
                "torchenstein.nn.reduction",
                "Reduction rituals and ignore_index",
                "mean, sum and none, and how ignore_index quietly changes the mean's denominator.",
            ),
        ),
        labs=(
            Lab(
                "nn",
                "deep_nets_lab",
                "Lab: normalisation at depth",
                "A twelve-layer network trained on real handwritten digits with no normalisation, with "
                "BatchNorm and with LayerNorm, built from the lessons' own modules.",
            ),
        ),
    ),
    Part(
        3,
        "training",
        "Training: bringing the monster to life",
        "Optimisers, training loops, data loading and mixed precision, and how an honest loop keeps the "
        "test set out of training (the leak that once won Dr. Hammer a paper).",
        (
            "the training loop",
            "optimisers from scratch: SGD, Adam and AdamW",
            "learning-rate schedules",
            "datasets and data loaders",
            "DataLoader workers",
            "gradient clipping",
            "hunting NaNs",
            "mixed precision",
            "train, validation and test splits without leaks",
            "state_dict and safe checkpoints",
            "resumable training",
        ),
        (
            Lesson(
                "torchenstein.training.loop",
                "The training loop",
                "Forward, loss, zero_grad, backward, step: one honest loop, its sanity checks, and a hand-made "
                "step equal to torch.optim.SGD's.",
            ),
            Lesson(
                "torchenstein.training.sgd",
                "Optimisers from scratch, I: SGD",
                "SGD with momentum, dampening, Nesterov and weight decay, derived, rebuilt as a "
                "torch.optim.Optimizer and proved bitwise equal to PyTorch's.",
            ),
            Lesson(
                "torchenstein.training.adam",
                "Optimisers from scratch, II: Adam and AdamW",
                "Adam and AdamW with bias correction, AMSGrad, and decoupled versus L2 weight decay, bitwise "
                "equal to PyTorch's.",
            ),
            Lesson(
                "torchenstein.training.schedules",
                "Learning-rate schedules",
                "Warm-up, cosine, linear, step and one-cycle as pure functions of the step, proved equal to "
                "PyTorch's schedulers.",
            ),
            Lesson(
                "torchenstein.training.data",
                "Datasets and the DataLoader",
                "Datasets, samplers and collation rebuilt, and a loader that serves PyTorch's batches in "
                "PyTorch's order.",
            ),
            Lesson(
                "torchenstein.training.workers",
                "DataLoader workers",
                "num_workers, fork and spawn, worker seeding proved exactly, sharded streams and per-worker "
                "augmentations.",
            ),
            Lesson(
                "torchenstein.training.clipping",
                "Gradient clipping",
                "Total gradient norms, clip_grad_norm_ and clip_grad_value_ from scratch, and a run that "
                "explodes unless leashed.",
            ),
            Lesson(
                "torchenstein.training.nans",
                "Hunting NaNs",
                "Every classic NaN bred and cured, anomaly mode read with suspicion, a forward tracer and a "
                "guarded optimizer step.",
            ),
            Lesson(
                "torchenstein.training.mixed_precision",
                "Mixed precision",
                "What autocast runs in 16 bits and what in float32, why weights stay float32, and a dynamic "
                "loss scaler proved equal to GradScaler.",
            ),
            Lesson(
                "torchenstein.training.leak",
                "Dr. Hammer's leak",
                "Four ways test data leaks into training, each reproduced beside the honest score, and the "
                "checks that catch them.",
            ),
            Lesson(
                "torchenstein.training.checkpoints",
                "Preserving your monster's memories",
                "state_dict, safe loading with weights_only, and checkpoints that resume to the same bits.",
            ),
            Lesson(
                "torchenstein.training.resume",
                "Resumable training",
                "A complete training state saved atomically and loaded with weights_only, a sampler that "
                "resumes mid-epoch, and a run interrupted anywhere that rejoins the uninterrupted one bit "
                "for bit.",
            ),
        ),
        labs=(
            Lab(
                "training",
                "digits_capstone",
                "Lab: the capstone training run",
                "Every Part 3 tool in one honest run on handwritten digits: clean splits, AdamW with warm-up "
                "and cosine, clipping, bfloat16 autocast, early stopping, a checkpoint resumed bit for bit, "
                "and the test set opened once.",
            ),
        ),
    ),
    Part(
        4,
        "transformers",
        "Transformers: the attention machine",
        "Attention from raw tensors up to a complete Transformer, each piece proved equal to PyTorch's.",
        (
            "scaled dot-product attention",
            "multi-head attention",
            "rotary position embeddings",
            "the Transformer block",
            "a GPT from scratch",
            "the KV cache",
        ),
        (
            Lesson(
                "torchenstein.transformers.attention",
                "Scaled dot-product attention",
                "Scores, softmax, the square root of d and masks: attention by hand and as einsum, up to a whole "
                "multi-head attention, proved equal to PyTorch's.",
            ),
            Lesson(
                "torchenstein.transformers.multihead",
                "Multi-head attention",
                "Heads, PyTorch's two masks, the fast path, and grouped-query attention with its KV-cache "
                "savings, proved equal to nn.MultiheadAttention.",
            ),
            Lesson(
                "torchenstein.transformers.seeing",
                "Seeing attention",
                "A two-layer attention-only transformer trained on repeated sequences, its maps caught with "
                "forward hooks, previous-token and induction heads scored against a random baseline, and "
                "ablation to show what a map cannot tell.",
            ),
            Lesson(
                "torchenstein.transformers.rope",
                "Rotary position embeddings",
                "Queries and keys rotated by their positions so scores depend only on distance: both layouts, "
                "the permutation between them, and equality with Hugging Face's LLaMA.",
            ),
            Lesson(
                "torchenstein.transformers.flash",
                "Attention that fits in memory",
                "The online softmax and tiled FlashAttention-2 in plain PyTorch, forward and recomputing backward, "
                "proved equal to scaled_dot_product_attention while saving one log-sum-exp per query.",
            ),
            Lesson(
                "torchenstein.transformers.block",
                "The Transformer block",
                "Encoder and decoder layers, their stacks and the whole nn.Transformer from the course's own "
                "attention, LayerNorm and Linear, equal in weights, outputs and gradients; post-norm against "
                "pre-norm measured; the eval fast path and padding.",
            ),
            Lesson(
                "torchenstein.transformers.tokenization",
                "Tokenisation",
                "Any text as byte ids and back, byte-pair encoding trained from scratch on the course's own "
                "text, and vocabulary size traded against sequence length, measured.",
            ),
            Lesson(
                "torchenstein.transformers.gpt",
                "A GPT from scratch",
                "GPT-2 as a small config and four modules named after GPT-2: tied head, parameter count by "
                "formula, GPT-2's initialisation and its loss at birth, proved equal to Hugging Face's "
                "GPT2LMHeadModel in logits, loss and gradients.",
            ),
            Lesson(
                "torchenstein.transformers.llama",
                "LLaMA",
                "RMSNorm, RoPE, SwiGLU and grouped-query attention assembled into a LLaMA decoder whose "
                "logits, loss and gradients equal Hugging Face's LlamaForCausalLM, left padding included.",
            ),
            Lesson(
                "torchenstein.transformers.generation",
                "Generation and the KV cache",
                "Greedy decoding, temperature, top-k and top-p proved equal to Hugging Face's, and a KV cache "
                "for our GPT whose every logit equals full recomputation, generating Hugging Face's tokens.",
            ),
        ),
        labs=(
            Lab(
                "transformers",
                "gpt_capstone",
                "Capstone: a GPT trained here",
                "A byte-level GPT trained on the course's own text on a CPU in minutes, split by position, "
                "then sampled and looked inside.",
            ),
        ),
    ),
    Part(
        5,
        "diffusion",
        "Diffusion models: order from noise",
        "Noise schedules, the forward process, a denoising U-Net and sampling, from raw tensors.",
        (
            "the forward noising process",
            "noise schedules",
            "the denoising U-Net",
            "training a DDPM",
            "sampling with DDPM and DDIM",
            "classifier-free guidance",
        ),
        (
            Lesson(
                "torchenstein.diffusion.forward",
                "The forward process",
                "Gaussian noise step by step and in one jump, proved the same law, and q_sample proved equal "
                "to diffusers' add_noise bit for bit.",
            ),
            Lesson(
                "torchenstein.diffusion.schedules",
                "Noise schedules",
                "Linear, scaled-linear and cosine betas equal to DDPMScheduler's, compared by log-SNR, and "
                "rescaled to zero terminal SNR.",
            ),
            Lesson(
                "torchenstein.diffusion.denoiser",
                "The denoiser",
                "Sinusoidal timestep embeddings equal to diffusers', an MLP denoiser for points and a small "
                "U-Net for digits with time and class conditioning, its blocks equal to diffusers' blocks, "
                "shapes traced and parameters counted by formula.",
            ),
            Lesson(
                "torchenstein.diffusion.ddpm",
                "Training a DDPM",
                "DDPM's simple noise loss derived from the variational bound, epsilon-, x0- and v-prediction "
                "with exact conversions, an EMA equal to AveragedModel's, and training checked per timestep.",
            ),
            Lesson(
                "torchenstein.diffusion.sampling",
                "Sampling: DDPM",
                "The reverse step derived from the posterior, DDPM's sampler equal to diffusers' DDPMScheduler "
                "bit for bit, and a ring of Gaussians sampled from noise with its exact denoiser.",
            ),
            Lesson(
                "torchenstein.diffusion.ddim",
                "Sampling: DDIM",
                "The DDIM step from scratch, timestep spacings and inversion, equal bit for bit to diffusers' "
                "DDIMScheduler and DDIMInverseScheduler, with quality measured against the step count.",
            ),
            Lesson(
                "torchenstein.diffusion.guidance",
                "Guidance",
                "Class-conditional exact denoisers, classifier-free guidance on a doubled batch equal to "
                "diffusers' guider and shown to be the score of p(x) p(y|x)^w, its fidelity-for-diversity "
                "trade measured, and a denoiser trained with label dropout.",
            ),
            Lesson(
                "torchenstein.diffusion.score",
                "The score and the gradients of diffusion",
                "The score by autograd drives Langevin sampling; denoising score matching averages to the "
                "noised density's score; where gradients flow, and must not, in training, sampling and "
                "classifier guidance.",
            ),
        ),
        labs=(
            Lab(
                "diffusion",
                "digits_diffusion",
                "Capstone: a diffusion model trained here",
                "A class-conditional U-Net trained here on the 8x8 digits, sampled with DDPM and DDIM under "
                "classifier-free guidance, and judged by a classifier of real digits.",
            ),
        ),
    ),
    Part(
        6,
        "advanced",
        "Advanced PyTorch: the forbidden arts",
        "What happens under the hood: hooks, profiling, the CUDA memory allocator, distributed "
        "training and exporting a model.",
        (
            "forward and backward hooks",
            "profiling",
            "the CUDA caching memory allocator",
            "distributed data parallel",
            "torch.compile and torch.export",
        ),
        (
            Lesson(
                "torchenstein.advanced.hooks",
                "Hooks",
                "Tensor, module and saved-tensor hooks: recorders for activations and gradients, clipping "
                "during backward proved equal to clip_grad_value_, and the bytes autograd saves counted.",
            ),
            Lesson(
                "torchenstein.advanced.profiling",
                "Profiling and benchmarking",
                "Honest timing with torch.utils.benchmark, labelled regions in torch.profiler, FLOPs counted by "
                "hand equal to FlopCounterMode for Linear and attention, and model FLOPs utilisation.",
            ),
            Lesson(
                "torchenstein.advanced.allocator",
                "The CUDA caching allocator",
                "PyTorch's CUDA caching allocator rebuilt rule by rule as a simulator: 512-byte rounding, two "
                "pools, segments, best fit, splitting and merging, empty_cache and fragmentation, with "
                "memory_stats' names and a GPU comparison.",
            ),
            Lesson(
                "torchenstein.advanced.memory",
                "Where training memory goes",
                "Parameters, gradients, optimiser state and activations of our GPT by formula, the activations "
                "matched byte for byte by the saved-tensor ledger, and activation checkpointing with what it "
                "saves and what it costs.",
            ),
            Lesson(
                "torchenstein.advanced.compile",
                "torch.compile",
                "Dynamo's captured graph read through a backend of our own, graph breaks and recompilations "
                "counted and their causes named, and a GPT block and training step compiled with Inductor, "
                "equal to eager within stated float32 tolerances, gradients included.",
            ),
            Lesson(
                "torchenstein.advanced.distributed",
                "Distributed data parallel",
                "All-reduce built as a ring from sends and receives and proved equal to dist.all_reduce, DDP "
                "proved equal to one process on the whole batch (no_sync too), DistributedSampler, saving "
                "from rank 0, and what FSDP shards, by formula.",
            ),
            Lesson(
                "torchenstein.advanced.export",
                "Export",
                "Our GPT exported with a dynamic sequence length, its ExportedProgram read, bitwise equal to "
                "eager and after a save and a load; what will not export (value-dependent branches fixed "
                "with torch.cond) and lowering to core ATen.",
            ),
            Lesson(
                "torchenstein.advanced.quantization",
                "Quantisation",
                "Int8 quantisation from scratch, equal integer for integer to torch.quantize_per_tensor and "
                "per_channel and to the MinMax observers; the error against s^2/12; weight-only int8 for our "
                "GPT with its bytes by formula and its loss change measured.",
            ),
        ),
    ),
)
"""The whole course, part by part, in teaching order."""


def lessons() -> list[Lesson]:
    """Every lesson of the course, in teaching order.

    Examples:
        >>> [lesson.name for lesson in lessons()][:3]
        ['getting_started', 'creation', 'surgery']
    """
    return [lesson for part in COURSE for lesson in part.lessons]


def labs() -> list[Lab]:
    """Every lab of the course, in course order.

    Examples:
        >>> all(lab.script.startswith("labs/") for lab in labs())
        True
    """
    return [lab for part in COURSE for lab in part.labs]


def find_lesson(module: str) -> Lesson:
    """The lesson whose module is ``module``.

    Raises:
        KeyError: if no lesson in the course order has that module.

    Examples:
        >>> find_lesson("torchenstein.tensors.dtypes").title
        'Dtypes and devices'
    """
    for lesson in lessons():
        if lesson.module == module:
            return lesson
    raise KeyError(f"no lesson in the course order is the module {module!r}")


def module_path(module: str) -> Path:
    """The file that holds a module of the package, found without importing it.

    Raises:
        ModuleNotFoundError: if the module does not exist.

    Examples:
        >>> module_path("torchenstein.course").name
        'course.py'
    """
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"no module named {module!r}")
    return Path(spec.origin)


@functools.lru_cache(maxsize=256)
def syntax_tree(source: str) -> ast.Module:
    """The syntax tree of a module's source, parsed once however many readers ask (read it, never edit it).

    A site build reads every lesson's tree several times (its text, its figures, its imports, its source
    view's sections and links); parsing a long lesson each time is a noticeable share of a cold build.
    """
    return ast.parse(source)


def lesson_text(source: str) -> str:
    r"""The text of a module's docstring, which for a lesson is the lesson itself; empty if it has none.

    Examples:
        >>> lesson_text("'# A lesson'\nx = 1")
        '# A lesson'
    """
    return ast.get_docstring(syntax_tree(source), clean=True) or ""


def is_lesson_source(source: str) -> bool:
    """Say whether a module's source is a lesson: its docstring opens with a level-one title.

    Examples:
        >>> is_lesson_source("'# A lesson'")
        True
        >>> is_lesson_source("'A helper module.'")
        False
    """
    return lesson_text(source).startswith("# ")


def lesson_modules_in_package() -> list[str]:
    """Every module in the package that is written as a lesson, whether or not the course lists it.

    Examples:
        >>> "torchenstein.transformers.attention" in lesson_modules_in_package()
        True
    """
    root = module_path(PACKAGE).parent
    found = []
    for info in pkgutil.walk_packages([str(root)], prefix=f"{PACKAGE}."):
        if info.ispkg or info.name.rsplit(".", 1)[1].startswith("_"):
            continue
        path = module_path(info.name)
        if is_lesson_source(path.read_text(encoding="utf-8")):
            found.append(info.name)
    return sorted(found)
