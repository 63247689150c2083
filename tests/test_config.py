"""The config tree composes, every group option instantiates, and the CLI describes it."""

import pytest
from omegaconf import OmegaConf

from conftest import compose_config, run_cli
from ganlab.trust.paths import config_groups


def test_default_config_is_dcgan_bce_on_digits():
    cfg = compose_config(shrink=False)
    assert cfg.dataset._target_ == "ganlab.data.digits.load_digits"
    assert cfg.model.generator._target_ == "ganlab.models.dcgan.DCGANGenerator"
    assert cfg.loss.adversarial._target_ == "ganlab.losses.NonSaturatingLoss"
    assert cfg.device == "auto" and cfg.resume is False and cfg.seed == 0
    # The objective receives the chosen loss and the schedule's phase counts by interpolation.
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["model"]["objective"]["loss"] == resolved["loss"]["adversarial"]
    assert resolved["model"]["objective"]["n_critic"] == cfg.schedule.n_critic


def test_a_model_dataset_pair_applies_by_itself_and_the_command_line_wins():
    mnist = compose_config(["dataset=mnist"], shrink=False).model
    assert (mnist.generator.width, mnist.discriminator.width) == (128, 64)  # the homework DCGAN's widths
    assert mnist.generator.init == mnist.discriminator.init == "examples"
    typed = compose_config(["dataset=mnist", "model.generator.width=64", "model.generator.init=dcgan"], shrink=False)
    assert (typed.model.generator.width, typed.model.generator.init) == (64, "dcgan")
    other = compose_config(["dataset=cifar10"], shrink=False).model  # no pair file: the model's own defaults
    assert (other.generator.width, other.generator.init) == (64, "dcgan")


# Groups that only the conditional models include (their backbones).
NEEDS = {"generator_backbone": ["model=cgan"], "discriminator_backbone": ["model=cgan"],
         "loss=none": ["model=vae_mlp"]}  # no adversarial loss: for models that train their own objective


def _pair(group: str, option: str) -> list[str]:
    """A per-pair file (model_dataset/dcgan_mnist) composes with its own model and partner picked:
    its keys are settings of that model's networks."""
    if not group.startswith("model_"):
        return []
    model = max((m for m in config_groups()["model"] if option.startswith(m + "_")), key=len)
    return [f"model={model}", f"{group.split('_', 1)[1]}={option[len(model) + 1:]}"]


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in config_groups().items() for o in opts])
def test_every_group_option_composes(group, option):
    """Each option composes, and every object it configures is one a config may build."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra import compose, initialize_config_dir

    from ganlab.trust.build import allowed_prefixes, check_targets
    from ganlab.trust.paths import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=[*NEEDS.get(group, NEEDS.get(f"{group}={option}", [])),
                                          *_pair(group, option), f"{group}={option}"], return_hydra_config=True)
        assert cfg.hydra.runtime.choices[group] == option
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    check_targets(job, allowed_prefixes())  # raises for a target nothing may build


@pytest.mark.parametrize("experiment", config_groups()["experiment"])
def test_debug_tiny_is_eight_steps_after_any_preset(experiment):
    """`experiment=X debug=tiny` is the few-second check it says it is: a preset's epochs (which set the
    length when given) do not turn it back into the full run (anime_collapse: 40,000 steps)."""
    cfg = compose_config([f"experiment={experiment}", "debug=tiny"], shrink=False)
    assert (cfg.schedule.steps, cfg.schedule.epochs, cfg.dataset.batch_size) == (8, None, 16)


def test_overrides_reach_the_config():
    cfg = compose_config(["optimizer.lr=1e-4", "schedule.n_critic=5", "loss=hinge"])
    assert cfg.optimizer.lr == pytest.approx(1e-4)
    assert OmegaConf.to_container(cfg, resolve=True)["model"]["objective"]["n_critic"] == 5
    assert cfg.loss.adversarial._target_.endswith("HingeLoss")


def test_help_lists_commands_and_groups(tmp_path):
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "train" in result.stdout
    listed = _group_listing(result.stdout)
    for group, options in config_groups().items():  # each group's own entry names exactly its options
        assert listed[group] == sorted(options), (group, listed.get(group))


def _group_listing(text: str) -> dict[str, list[str]]:
    """The help's group table: `  group  a, b,` with continuation lines, as {group: [options]}."""
    table, group = {}, None
    section = text.split("Config groups", 1)[1].split("\n", 1)[1]
    for line in section.splitlines():
        if not line.strip():
            break
        if not line.startswith("   "):  # a new group's first line
            group, _, rest = line.strip().partition(" ")
            table[group] = []
        else:
            rest = line
        table[group] += [o.strip() for o in rest.split(",") if o.strip()]
    return {g: sorted(o) for g, o in table.items()}


def test_train_cfg_job_prints_the_composed_config_without_training(tmp_path):
    result = run_cli("train", "--cfg", "job", "loss=hinge", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    printed = OmegaConf.create(result.stdout)
    assert printed.loss.adversarial._target_ == "ganlab.losses.HingeLoss"
    assert not (tmp_path / "outputs").exists()


def test_unknown_command_is_a_short_error(tmp_path):
    result = run_cli("trian", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown command 'trian'" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_multirun_sweep_gives_each_job_a_folder_named_by_its_overrides(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli("train", "-m", "loss=bce,hinge", "device=cpu", "progress=false", "dataset.resolution=8",
                     "dataset.batch_size=8", "model.generator.width=4", "model.discriminator.width=4",
                     "schedule.steps=2", "schedule.log_every=1", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == ["0_loss=bce", "1_loss=hinge"]  # named by what the sweep varies
    for job, loss in zip(jobs, ("NonSaturatingLoss", "HingeLoss")):
        assert (sweep / job / "checkpoints" / "last.pt").is_file()
        assert loss in (sweep / job / ".hydra" / "config.yaml").read_text()


def test_long_job_folder_names_are_cut_with_a_hash():
    from ganlab.commands.launch import JOB_NAME_LIMIT, job_folder_name

    a, b = job_folder_name("x=" + "1" * 200), job_folder_name("x=" + "1" * 199 + "2")
    assert len(a) == JOB_NAME_LIMIT and a != b
    assert job_folder_name("dataset.root=/a/b") == "dataset.root=_a_b"


def test_train_help_describes_the_command_not_a_config_dump(tmp_path, monkeypatch, capsys):
    from conftest import cli_in_process

    code, out, err = cli_in_process("train", "--help", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    assert "_blocks" not in out and "Exit codes: 0 done; 2 bad input" in out and "The run folder:" in out
    for group in config_groups():
        assert f"\n  {group} " in out
    assert "  dataset                digits, " in out  # the default first
    assert len(out.splitlines()) < 80
