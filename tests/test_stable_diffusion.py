"""Stable Diffusion in our modules: diffusers' SD-shaped components with random weights, saved as a
diffusers folder, loaded by minildm and compared with diffusers itself (fp32).

Tiny SD 1.x- and 2.x-shaped configs keep every test at a few seconds: the same block types, the
same head rules (1.x: a fixed number of heads; 2.x: heads of a fixed width, Linear projections),
GroupNorm 32, a VAE with f = 8 and 4 latent channels; only the widths are small.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

diffusers = pytest.importorskip("diffusers")
from diffusers import (  # noqa: E402
    AutoencoderKL as DAutoencoderKL,
)
from diffusers import (  # noqa: E402
    DDIMScheduler as DDDIMScheduler,
)
from diffusers import (  # noqa: E402
    DPMSolverMultistepScheduler as DDPMSolver,
)
from diffusers import (  # noqa: E402
    EulerDiscreteScheduler as DEuler,
)
from diffusers import (  # noqa: E402
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from safetensors.torch import save_file  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer  # noqa: E402

from minildm.pipelines import Img2ImgPipeline, TextToImagePipeline  # noqa: E402
from minildm.schedulers import SCHEDULERS, DDIMScheduler  # noqa: E402
from minildm.stable_diffusion import (  # noqa: E402
    load_sd_folder,
    save_pretrained,
    scheduler_from_diffusers,
    sd2_unet_config,
    sd15_unet_config,
    sd_vae_config,
    unet_config_from_diffusers,
)

PROMPTS = ["a red cat", "an apple"]


@pytest.fixture(autouse=True)
def _quiet_and_one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    yield
    torch.set_num_threads(threads)


def _tokenizer(folder: Path) -> CLIPTokenizer:
    """A byte-pair CLIP tokenizer of a few dozen tokens, from a vocab and merges written to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    letters = "abcdefghijklmnopqrstuvwxyz"
    merges = ["a n</w>", "r e", "re d</w>", "c a", "ca t</w>", "a p", "p l", "ap pl"]
    tokens = list(letters) + [c + "</w>" for c in letters] + [m.replace(" ", "") for m in merges]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def _components(version: int, root: Path) -> dict:
    """diffusers' SD components of SD ``version``'s shape, random weights (seeded)."""
    torch.manual_seed(version)
    width = 32 if version == 1 else 48
    unet = UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(32, 64, 64),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=width,
        # SD 1.x: 8 heads everywhere (width follows); SD 2.x: heads of width 16 (diffusers' list form)
        attention_head_dim=8 if version == 1 else (2, 4, 4),
        use_linear_projection=version == 2,
        norm_num_groups=32,
    )
    vae = DAutoencoderKL(
        block_out_channels=(32, 32, 64, 64),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=64,
    )
    tokenizer = _tokenizer(root / f"vocab{version}")
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=width,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    scheduler = DDDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="epsilon" if version == 1 else "v_prediction",
    )
    for module in (unet, vae, text_encoder):
        with torch.no_grad():  # zero-initialised layers get values too, so every weight is checked
            for p in module.parameters():
                if not p.any():
                    p.normal_(0, 0.02)
        module.eval()
    return dict(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)


@pytest.fixture(scope="module", params=[1, 2], ids=["sd1", "sd2"])
def sd_folder(request, tmp_path_factory) -> tuple[Path, StableDiffusionPipeline]:
    root = tmp_path_factory.mktemp(f"sd{request.param}")
    pipe = StableDiffusionPipeline(
        **_components(request.param, root),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(root / "model")
    return root / "model", pipe


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


# ---------------------------------------------------------------- the modules, one by one


def test_unet_vae_and_text_encoder_equal_diffusers(sd_folder):
    folder, ref = sd_folder
    ours = load_sd_folder(folder, device="cpu")
    torch.manual_seed(0)
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([10, 700])
    with torch.no_grad():
        context = ours["text_encoder"](PROMPTS)
        ids = ref.tokenizer(
            PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
        ).input_ids
        assert context.shape == (2, 77, ref.text_encoder.config.hidden_size)
        assert _max_diff(context, ref.text_encoder(ids)[0]) <= 1e-5
        assert _max_diff(ours["backbone"](x, t, context), ref.unet(x, t, context).sample) <= 1e-5
        image = torch.rand(1, 3, 64, 64) * 2 - 1
        posterior, ref_posterior = ours["vae"].encode(image), ref.vae.encode(image).latent_dist
        assert _max_diff(posterior.mean, ref_posterior.mean) <= 1e-5
        assert _max_diff(posterior.logvar, ref_posterior.logvar) <= 1e-5
        z = torch.randn(1, 4, 8, 8)
        assert _max_diff(ours["vae"].decode(z), ref.vae.decode(z).sample) <= 1e-5
    assert ours["scale_factor"] == ref.vae.config.scaling_factor == 0.18215


def test_configs_express_sd_and_diffusers_config_round_trips(sd_folder):
    folder, _ = sd_folder
    unet_json = json.loads((folder / "unet" / "config.json").read_text())
    cfg = unet_config_from_diffusers(unet_json)
    assert cfg.heads_at(0) == ((8, 4) if unet_json["cross_attention_dim"] == 32 else (2, 16))
    from minildm.stable_diffusion import unet_config_to_diffusers

    assert unet_config_from_diffusers(unet_config_to_diffusers(cfg)) == cfg
    # the real configurations: SD 1.5's 860M-parameter U-Net, SD 2.x's heads of width 64, SD's VAE
    assert sd15_unet_config().heads_at(0) == (8, 40) and sd15_unet_config().heads_at(3) == (8, 160)
    assert sd2_unet_config().heads_at(0) == (5, 64) and sd2_unet_config().heads_at(2) == (20, 64)
    assert (
        sd_vae_config().latent_shape((3, 512, 512)) == (4, 64, 64)
        and sd_vae_config().scaling_factor == 0.18215
    )


# ---------------------------------------------------------------- whole pipelines


def _diffusers_images(ref, prompts, steps, seed, scheduler=None, **kwargs) -> torch.Tensor:
    if scheduler is not None:
        ref = StableDiffusionPipeline(**{**ref.components, "scheduler": scheduler})
    latents = torch.randn((len(prompts), 4, 8, 8), generator=torch.Generator().manual_seed(seed))
    out = ref(
        prompts, num_inference_steps=steps, guidance_scale=7.5, latents=latents, output_type="pt", **kwargs
    ).images
    return out * 2 - 1  # [0, 1] -> ours, [-1, 1]


@pytest.mark.parametrize("sampler", ["ddim", "dpm++", "euler"])
def test_text_to_image_equals_stable_diffusion_pipeline(sd_folder, sampler):
    folder, _ = sd_folder
    pipe = TextToImagePipeline.from_pretrained(folder, device="cpu")
    ref = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None)  # the same folder
    assert isinstance(pipe.scheduler, DDIMScheduler)  # the folder's DDIMScheduler
    theirs = {"ddim": None, "dpm++": DDPMSolver, "euler": DEuler}[sampler]
    if theirs is not None:  # swapped diffusers' way, on the folder's schedule (leading, steps_offset 1)
        config = dict(ref.scheduler.config)
        if sampler == "dpm++":  # (diffusers' DPM-Solver spaces "leading" its own way: n + 1 points)
            config["timestep_spacing"] = "linspace"
        theirs = theirs.from_config(config)
        pipe.scheduler = SCHEDULERS[sampler].from_config({**vars(pipe.scheduler.config), **config})
    ours = pipe(PROMPTS, 4, 7.5, seed=3, progress=False).images
    assert ours.shape == (2, 3, 64, 64)
    assert _max_diff(ours, _diffusers_images(ref, PROMPTS, 4, 3, theirs)) <= 1e-4


def test_img2img_equals_stable_diffusion_img2img_pipeline(sd_folder):
    folder, ref = sd_folder
    pipe = Img2ImgPipeline.from_pretrained(folder, device="cpu")
    image = torch.rand(1, 3, 64, 64) * 2 - 1
    ours = pipe(
        PROMPTS[:1],
        image,
        strength=0.6,
        num_inference_steps=5,
        guidance_scale=7.5,
        seed=5,
        progress=False,
        init="noise",
    ).images
    # diffusers draws z from q(z | x), ours takes its mean: hand diffusers that latent (it takes latents
    # for an image); then both draw the same noise from the same seed and noise it to the same timestep
    latent = pipe.encode_image(image)
    theirs = StableDiffusionImg2ImgPipeline(**ref.components)(
        PROMPTS[:1],
        image=latent,
        strength=0.6,
        num_inference_steps=5,
        guidance_scale=7.5,
        output_type="pt",
        generator=torch.Generator().manual_seed(5),
    ).images
    assert _max_diff(ours, theirs * 2 - 1) <= 1e-4


def test_inpaint_pipeline_loads_an_sd_folder(sd_folder):
    from minildm.pipelines import InpaintPipeline

    pipe = InpaintPipeline.from_pretrained(sd_folder[0], device="cpu")
    assert (
        isinstance(pipe, InpaintPipeline) and pipe.latent_shape == (4, 8, 8) and pipe.scale_factor == 0.18215
    )


# ---------------------------------------------------------------- our model -> diffusers -> ours


def _our_model(tmp_path: Path) -> TextToImagePipeline:
    """A learner's text-to-image model: our U-Net (SD 1.x's head rule), our VAE (SD's padding),
    lesson 06's text encoder with the word-level tokenizer, v-prediction on a cosine schedule."""
    from minildm.nn import UNetConfig, UNetModel
    from minildm.text import TextEncoder
    from minildm.text.tokenizer import build_tokenizer
    from minildm.vae import AutoencoderKL, VAEConfig

    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    text_model = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=16,
            bos_token_id=2,
            eos_token_id=1,
            pad_token_id=0,
        )
    ).eval()
    encoder = TextEncoder(text_model, tokenizer, clip_skip=1)
    unet = UNetModel(
        UNetConfig(
            in_channels=4,
            out_channels=4,
            model_channels=32,
            channel_mult=(1, 2),
            attention_levels=(0, 1),
            num_heads=4,
            dim_head=None,
            context_dim=32,
            image_size=8,
        )
    ).eval()
    vae = AutoencoderKL(VAEConfig(ch=16, ch_mult=(1, 2), downsample_padding=0)).eval()
    for module in (unet, vae):
        with torch.no_grad():
            for p in module.parameters():
                if not p.any():
                    p.normal_(0, 0.02)
    scheduler = DDIMScheduler(
        beta_schedule="squaredcos_cap_v2",
        clip_sample=False,
        prediction_type="v_prediction",
        timestep_spacing="trailing",
    )
    return TextToImagePipeline(unet, scheduler, vae, 0.6, encoder)


def test_our_model_saved_in_diffusers_layout_draws_the_same_in_diffusers_and_back(tmp_path):
    pipe = _our_model(tmp_path)
    prompts = ["a red circle", "a blue square"]
    # 4 steps: with "trailing" spacing diffusers' DDIM steps by T // n, the same as ours when n divides T
    ours = pipe(prompts, 4, 7.5, seed=1, progress=False).images
    save_pretrained(pipe, tmp_path / "exported")
    assert (
        json.loads((tmp_path / "exported" / "model_index.json").read_text())["tokenizer"][1]
        == "PreTrainedTokenizerFast"
    )  # the word-level tokenizer: not a CLIPTokenizer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # (diffusers' note on steps_offset 0)
        ref = StableDiffusionPipeline.from_pretrained(tmp_path / "exported", safety_checker=None)
    assert ref.text_encoder.config.num_hidden_layers == 1  # clip_skip=1 baked in
    latents = torch.randn((2, 4, 16, 16), generator=torch.Generator().manual_seed(1))
    theirs = ref(prompts, num_inference_steps=4, guidance_scale=7.5, latents=latents, output_type="pt").images
    assert _max_diff(ours, theirs * 2 - 1) <= 1e-4
    back = TextToImagePipeline.from_pretrained(tmp_path / "exported", device="cpu")
    assert _max_diff(back(prompts, 4, 7.5, seed=1, progress=False).images, ours) <= 1e-5
    with pytest.raises(FileExistsError, match="overwrite"):
        save_pretrained(pipe, tmp_path / "exported")


def test_save_refuses_what_diffusers_cannot_express(tmp_path):
    from minildm.checkpoints import checkpoint_dir

    pipe = TextToImagePipeline.from_pretrained(checkpoint_dir() / "text2img_unet", device="cpu")
    with pytest.raises(ValueError, match="level 1 has 4 heads x 16 = 64 inner width for 128 channels"):
        save_pretrained(pipe, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything was written
    learner = _our_model(tmp_path)
    learner.vae = type(learner.vae)(type(learner.vae.config)(ch=16, ch_mult=(1, 2)))  # ours: padding 1
    with pytest.raises(ValueError, match="pads its downsampling on every side"):
        save_pretrained(learner, tmp_path / "out")


# ---------------------------------------------------------------- the scheduler config


def test_scheduler_config_keys_honoured_ignored_or_refused():
    sd15 = {
        "_class_name": "PNDMScheduler",
        "_diffusers_version": "0.6.0",
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "num_train_timesteps": 1000,
        "set_alpha_to_one": False,
        "skip_prk_steps": True,
        "steps_offset": 1,
        "trained_betas": None,
        "clip_sample": False,
    }
    scheduler, ignored = scheduler_from_diffusers(sd15)
    assert isinstance(scheduler, DDIMScheduler) and scheduler.config.steps_offset == 1
    assert "PNDM" in ignored["_class_name"] and "skip_prk_steps" in ignored
    euler, ignored = scheduler_from_diffusers(sd15, sampler="euler")
    assert "DDIM" in ignored["set_alpha_to_one"] and euler.config.beta_schedule == "scaled_linear"
    with pytest.raises(
        ValueError, match="use_beta_sigmas=True is not implemented by minildm's DDIMScheduler"
    ):
        scheduler_from_diffusers({**sd15, "use_beta_sigmas": True})  # (an Euler option of diffusers')
    with pytest.warns(UserWarning, match="bogus"):
        scheduler_from_diffusers({**sd15, "bogus": 3})
    with pytest.raises(ValueError, match="_class_name 'KDPM2DiscreteScheduler'"):
        scheduler_from_diffusers({**sd15, "_class_name": "KDPM2DiscreteScheduler"})
    with pytest.raises(ValueError, match="timestep_spacing"):
        scheduler_from_diffusers({**sd15, "timestep_spacing": "sideways"})


# ---------------------------------------------------------------- bad input, refused in one line


def _copy(folder: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(folder, dest)
    return dest


def _edit(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_bad_folders_and_files_are_refused_naming_the_file(sd_folder, tmp_path):
    folder, _ = sd_folder
    (tmp_path / "neither").mkdir()
    (tmp_path / "neither" / "notes.txt").write_text("hello")
    with pytest.raises(
        FileNotFoundError, match="neither a minildm checkpoint .* nor a Stable Diffusion folder"
    ):
        TextToImagePipeline.from_pretrained(tmp_path / "neither")
    ckpt = tmp_path / "sd.ckpt"
    ckpt.write_bytes(b"not read")
    with pytest.raises(ValueError, match=r"sd\.ckpt: a pickle checkpoint .* expected a \.safetensors"):
        TextToImagePipeline.from_pretrained(ckpt, text_encoder_path=folder)
    with pytest.raises(ValueError, match="holds no tokenizer"):
        TextToImagePipeline.from_pretrained(tmp_path / "sd.safetensors")
    bad_vae = _copy(folder, tmp_path / "vae8")
    _edit(bad_vae / "vae" / "config.json", latent_channels=8)
    with pytest.raises(
        ValueError, match=r"vae/config.json: the VAE has 8 latent channels.* expected the same"
    ):
        TextToImagePipeline.from_pretrained(bad_vae)
    bad_text = _copy(folder, tmp_path / "text")
    _edit(bad_text / "text_encoder" / "config.json", hidden_size=16)
    with pytest.raises(
        ValueError, match=r"text_encoder/config.json: the text encoder gives vectors of width 16"
    ):
        TextToImagePipeline.from_pretrained(bad_text)
    bad_unet = _copy(folder, tmp_path / "unet")
    _edit(bad_unet / "unet" / "config.json", class_embed_type="timestep")
    with pytest.raises(ValueError, match=r"unet/config.json: class_embed_type='timestep' is not supported"):
        TextToImagePipeline.from_pretrained(bad_unet)
    pickled = _copy(folder, tmp_path / "pickled")
    (pickled / "unet" / "diffusion_pytorch_model.safetensors").rename(
        pickled / "unet" / "diffusion_pytorch_model.bin"
    )
    with pytest.raises(ValueError, match=r"diffusion_pytorch_model.bin: a pickle checkpoint"):
        TextToImagePipeline.from_pretrained(pickled)


def test_v_prediction_unet_with_an_epsilon_scheduler_is_refused(tmp_path):
    """SD 2.x at 768x768 (sample size 96, context 1024) predicts v; detected from its configs."""
    root = tmp_path / "sd2v"
    pipe = StableDiffusionPipeline(
        **_components(2, tmp_path), safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    pipe.save_pretrained(root)
    _edit(root / "unet" / "config.json", sample_size=96, cross_attention_dim=1024)
    _edit(root / "text_encoder" / "config.json", hidden_size=1024)
    _edit(root / "scheduler" / "scheduler_config.json", prediction_type="epsilon")
    with pytest.raises(
        ValueError, match=r"scheduler_config.json: prediction_type is 'epsilon'.*'v_prediction'"
    ):
        TextToImagePipeline.from_pretrained(root)


def test_single_file_checkpoint_with_compvis_names(sd_folder, tmp_path):
    """An original-layout file (CompVis' names, which are ours but for time_embed) loads into the
    same pipeline, with the tokenizer and configs from the folder; without a folder's configs the
    U-Net's layout is read off the weights."""
    folder, _ = sd_folder
    parts = load_sd_folder(folder, device="cpu")
    state = {}
    for k, v in parts["backbone"].state_dict().items():
        k = k.replace("time_embed.linear_1.", "time_embed.0.").replace(
            "time_embed.linear_2.", "time_embed.2."
        )
        state["model.diffusion_model." + k] = v
    state |= {"first_stage_model." + k: v for k, v in parts["vae"].state_dict().items()}
    text = parts["text_encoder"].text_model
    state |= {
        "cond_stage_model.transformer.text_model." + k: v
        for k, v in getattr(text, "text_model", text).state_dict().items()
    }
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "sd.safetensors"))
    single = TextToImagePipeline.from_pretrained(tmp_path / "sd.safetensors", text_encoder_path=folder)
    from_folder = TextToImagePipeline.from_pretrained(folder)
    assert (
        _max_diff(
            single(PROMPTS, 2, 7.5, seed=0, progress=False).images,
            from_folder(PROMPTS, 2, 7.5, seed=0, progress=False).images,
        )
        == 0.0
    )
    from minildm.stable_diffusion.loading import _infer_unet_config
    from minildm.stable_diffusion.weights import unet_from_compvis

    cfg, ours = _infer_unet_config(unet_from_compvis(state), "sd.safetensors"), parts["backbone"].config
    assert (
        cfg.model_channels,
        cfg.channel_mult,
        cfg.num_res_blocks,
        cfg.attention_levels,
        cfg.context_dim,
        cfg.use_linear_projection,
    ) == (
        ours.model_channels,
        ours.channel_mult,
        ours.num_res_blocks,
        ours.attention_levels,
        ours.context_dim,
        ours.use_linear_projection,
    )


def test_sd2_single_file_open_clip_text_encoder_reads_the_penultimate_layer(tmp_path):
    """SD 2.x's original file holds OpenCLIP's text tower (fused in_proj, all layers); diffusers' folder
    dropped the last layer. Loaded from the file, our encoder reads the penultimate layer (clip_skip 1)
    and gives the folder's context."""
    from minildm.stable_diffusion.weights import text_from_compvis

    root = tmp_path / "sd2"
    pipe = StableDiffusionPipeline(
        **_components(2, tmp_path), safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    pipe.save_pretrained(root)
    text = getattr(pipe.text_encoder, "text_model", pipe.text_encoder)  # (transformers 4 nests it)
    sd = {k: v for k, v in text.state_dict().items() if k != "embeddings.position_ids"}
    extra = {
        k.replace("layers.1.", "layers.2."): torch.randn_like(v) for k, v in sd.items() if ".layers.1." in k
    }
    sd |= extra  # OpenCLIP's last layer, which diffusers' folder left out
    names = {
        "layer_norm1": "ln_1",
        "layer_norm2": "ln_2",
        "mlp.fc1": "mlp.c_fc",
        "mlp.fc2": "mlp.c_proj",
        "self_attn.out_proj": "attn.out_proj",
    }
    state = {
        "cond_stage_model.model.token_embedding.weight": sd["embeddings.token_embedding.weight"],
        "cond_stage_model.model.positional_embedding": sd["embeddings.position_embedding.weight"],
        "cond_stage_model.model.ln_final.weight": sd["final_layer_norm.weight"],
        "cond_stage_model.model.ln_final.bias": sd["final_layer_norm.bias"],
    }
    for i in range(3):
        ours, theirs = f"encoder.layers.{i}.", f"cond_stage_model.model.transformer.resblocks.{i}."
        for a, b in names.items():
            for p in ("weight", "bias"):
                state[f"{theirs}{b}.{p}"] = sd[f"{ours}{a}.{p}"]
        for p in ("weight", "bias"):
            state[f"{theirs}attn.in_proj_{p}"] = torch.cat(
                [sd[f"{ours}self_attn.{q}_proj.{p}"] for q in ("q", "k", "v")]
            )
    converted, kind = text_from_compvis(state)
    assert kind == "open_clip" and converted.keys() == sd.keys()
    parts = load_sd_folder(root, device="cpu")
    state |= {"first_stage_model." + k: v for k, v in parts["vae"].state_dict().items()}
    unet_state = {}
    for k, v in parts["backbone"].state_dict().items():
        k = k.replace("time_embed.linear_1.", "time_embed.0.").replace(
            "time_embed.linear_2.", "time_embed.2."
        )
        unet_state["model.diffusion_model." + k] = v
    state |= unet_state  # (with a U-Net and a VAE the file is a whole SD checkpoint)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "sd2.safetensors"))
    single = TextToImagePipeline.from_pretrained(tmp_path / "sd2.safetensors", text_encoder_path=root)
    assert single.text_encoder.clip_skip == 1 and single.text_encoder.text_model.config.num_hidden_layers == 3
    with torch.no_grad():
        assert _max_diff(single.text_encoder(PROMPTS), parts["text_encoder"](PROMPTS)) <= 1e-5
