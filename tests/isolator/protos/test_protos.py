"""The messages match Mesos's, and the committed generated code matches the sources."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

import isolator.protos
from isolator.protos import (
    CommandInfo,
    ContainerConfig,
    ContainerID,
    ContainerInfo,
    ContainerLaunchInfo,
    ContainerMountInfo,
    ContainerState,
    DockerVolume,
    DockerVolumes,
    ExecutorID,
    ExecutorInfo,
    Image,
    Parameter,
    Parameters,
    Volume,
)
from isolator.protos import generate as generate_module

REQUIRED = "required"
OPTIONAL = "optional"
REPEATED = "repeated"


def _label(field: FieldDescriptor) -> str:
    if field.is_repeated:
        return REPEATED
    return REQUIRED if field.is_required else OPTIONAL


# (message descriptor, field name, Mesos number, Mesos label)
MESOS_FIELDS: list[tuple[Descriptor, str, int, str]] = [
    (ContainerID.DESCRIPTOR, "value", 1, REQUIRED),
    (ContainerID.DESCRIPTOR, "parent", 2, OPTIONAL),
    (ExecutorID.DESCRIPTOR, "value", 1, REQUIRED),
    (Parameter.DESCRIPTOR, "key", 1, REQUIRED),
    (Parameter.DESCRIPTOR, "value", 2, REQUIRED),
    (Parameters.DESCRIPTOR, "parameter", 1, REPEATED),
    (Volume.DESCRIPTOR, "container_path", 1, REQUIRED),
    (Volume.DESCRIPTOR, "host_path", 2, OPTIONAL),
    (Volume.DESCRIPTOR, "mode", 3, REQUIRED),
    (Volume.DESCRIPTOR, "image", 4, OPTIONAL),
    (Volume.DESCRIPTOR, "source", 5, OPTIONAL),
    (Volume.Source.DESCRIPTOR, "type", 1, OPTIONAL),
    (Volume.Source.DESCRIPTOR, "docker_volume", 2, OPTIONAL),
    (Volume.Source.DockerVolume.DESCRIPTOR, "driver", 1, OPTIONAL),
    (Volume.Source.DockerVolume.DESCRIPTOR, "name", 2, REQUIRED),
    (Volume.Source.DockerVolume.DESCRIPTOR, "driver_options", 3, OPTIONAL),
    (Image.DESCRIPTOR, "type", 1, REQUIRED),
    (Image.DESCRIPTOR, "docker", 3, OPTIONAL),
    (Image.DESCRIPTOR, "cached", 4, OPTIONAL),
    (CommandInfo.DESCRIPTOR, "value", 3, OPTIONAL),
    (CommandInfo.DESCRIPTOR, "user", 5, OPTIONAL),
    (CommandInfo.DESCRIPTOR, "shell", 6, OPTIONAL),
    (CommandInfo.DESCRIPTOR, "arguments", 7, REPEATED),
    (ExecutorInfo.DESCRIPTOR, "executor_id", 1, REQUIRED),
    (ExecutorInfo.DESCRIPTOR, "command", 7, OPTIONAL),
    (ExecutorInfo.DESCRIPTOR, "container", 11, OPTIONAL),
    (ContainerInfo.DESCRIPTOR, "type", 1, REQUIRED),
    (ContainerInfo.DESCRIPTOR, "volumes", 2, REPEATED),
    (ContainerInfo.DESCRIPTOR, "hostname", 4, OPTIONAL),
    (ContainerInfo.DESCRIPTOR, "mesos", 5, OPTIONAL),
    (ContainerInfo.MesosInfo.DESCRIPTOR, "image", 1, OPTIONAL),
    (ContainerConfig.DESCRIPTOR, "directory", 3, REQUIRED),
    (ContainerConfig.DESCRIPTOR, "user", 4, OPTIONAL),
    (ContainerConfig.DESCRIPTOR, "rootfs", 5, OPTIONAL),
    (ContainerConfig.DESCRIPTOR, "executor_info", 8, OPTIONAL),
    (ContainerConfig.DESCRIPTOR, "command_info", 11, REQUIRED),
    (ContainerConfig.DESCRIPTOR, "container_info", 12, OPTIONAL),
    (ContainerState.DESCRIPTOR, "executor_info", 1, OPTIONAL),
    (ContainerState.DESCRIPTOR, "container_id", 2, REQUIRED),
    (ContainerState.DESCRIPTOR, "pid", 3, REQUIRED),
    (ContainerState.DESCRIPTOR, "directory", 4, REQUIRED),
    (ContainerState.DESCRIPTOR, "ephemeral_volumes", 5, REPEATED),
    (ContainerState.DESCRIPTOR, "container_info", 6, OPTIONAL),
    (ContainerMountInfo.DESCRIPTOR, "target", 1, REQUIRED),
    (ContainerMountInfo.DESCRIPTOR, "source", 2, OPTIONAL),
    (ContainerMountInfo.DESCRIPTOR, "type", 3, OPTIONAL),
    (ContainerMountInfo.DESCRIPTOR, "flags", 4, OPTIONAL),
    (ContainerMountInfo.DESCRIPTOR, "options", 5, OPTIONAL),
    (ContainerLaunchInfo.DESCRIPTOR, "pre_exec_commands", 1, REPEATED),
    (ContainerLaunchInfo.DESCRIPTOR, "rootfs", 3, OPTIONAL),
    (ContainerLaunchInfo.DESCRIPTOR, "clone_namespaces", 4, REPEATED),
    (ContainerLaunchInfo.DESCRIPTOR, "command", 5, OPTIONAL),
    (ContainerLaunchInfo.DESCRIPTOR, "working_directory", 6, OPTIONAL),
    (ContainerLaunchInfo.DESCRIPTOR, "enter_namespaces", 9, REPEATED),
    (ContainerLaunchInfo.DESCRIPTOR, "user", 10, OPTIONAL),
    (ContainerLaunchInfo.DESCRIPTOR, "mounts", 17, REPEATED),
    (DockerVolume.DESCRIPTOR, "driver", 1, REQUIRED),
    (DockerVolume.DESCRIPTOR, "name", 2, REQUIRED),
    (DockerVolumes.DESCRIPTOR, "volumes", 1, REPEATED),
]


@pytest.mark.parametrize(
    ("descriptor", "name", "number", "label"),
    MESOS_FIELDS,
    ids=[f"{d.name}.{n}" for d, n, _, _ in MESOS_FIELDS],
)
def test_field_number_and_label_match_mesos(
    descriptor: Descriptor, name: str, number: int, label: str
) -> None:
    field = descriptor.fields_by_name[name]
    assert field.number == number
    assert _label(field) == label


def test_messages_have_mesos_package_names() -> None:
    assert ContainerID.DESCRIPTOR.full_name == "mesos.ContainerID"
    assert Volume.Source.DockerVolume.DESCRIPTOR.full_name == "mesos.Volume.Source.DockerVolume"
    assert ContainerConfig.DESCRIPTOR.full_name == "mesos.slave.ContainerConfig"
    assert ContainerLaunchInfo.DESCRIPTOR.full_name == "mesos.slave.ContainerLaunchInfo"
    assert DockerVolumes.DESCRIPTOR.full_name == "mesos.internal.slave.DockerVolumes"


def test_enums_match_mesos() -> None:
    assert dict(Volume.Mode.items()) == {"RW": 1, "RO": 2}
    assert dict(Volume.Source.Type.items()) == {
        "UNKNOWN": 0,
        "DOCKER_VOLUME": 1,
        "SANDBOX_PATH": 2,
        "SECRET": 3,
        "HOST_PATH": 4,
        "CSI_VOLUME": 5,
    }
    assert dict(ContainerInfo.Type.items()) == {"DOCKER": 1, "MESOS": 2}
    assert dict(Image.Type.items()) == {"APPC": 1, "DOCKER": 2}


def test_defaults_match_mesos() -> None:
    assert CommandInfo().shell is True
    assert Image().cached is True
    # An unset Source.type reads as UNKNOWN (MESOS-4997).
    assert Volume.Source().type == Volume.Source.UNKNOWN


def test_required_fields_are_required() -> None:
    config = ContainerConfig()
    assert not config.IsInitialized()
    config.directory = "/sandbox"
    assert not config.IsInitialized()
    config.command_info.SetInParent()
    assert config.IsInitialized()
    config.executor_info.SetInParent()
    assert not config.IsInitialized()  # ExecutorInfo.executor_id is required
    config.executor_info.executor_id.value = "e"
    assert config.IsInitialized()


def _reserved_numbers(descriptor: Descriptor) -> set[int]:
    proto = descriptor_pb2.DescriptorProto()
    descriptor.CopyToProto(proto)
    return {n for r in proto.reserved_range for n in range(r.start, r.end)}


@pytest.mark.parametrize(
    ("descriptor", "numbers"),
    [
        (CommandInfo.DESCRIPTOR, {1, 2}),
        (ExecutorInfo.DESCRIPTOR, {4, 5, 8, 9, 10, 12, 13, 14, 15}),
        (Volume.Source.DESCRIPTOR, {3, 4, 5}),
        (ContainerInfo.DESCRIPTOR, {3, 7, 8, 9, 10}),
        (ContainerConfig.DESCRIPTOR, {7, 9, 10, 13, 14, 15, 16}),
        (ContainerLaunchInfo.DESCRIPTOR, {2, 7, 8, 14, 15, 16, 18, 19, 20, 21, 22, 23}),
    ],
    ids=lambda value: value.name if isinstance(value, Descriptor) else "",
)
def test_left_out_mesos_fields_are_reserved(descriptor: Descriptor, numbers: set[int]) -> None:
    assert _reserved_numbers(descriptor) == numbers
    assert not numbers & {field.number for field in descriptor.fields}


def test_binary_encoding_matches_mesos_field_numbers() -> None:
    mount = ContainerMountInfo(target="/t", source="/s", flags=20481)
    # field 1 "/t", field 2 "/s", field 4 varint 20481
    assert mount.SerializeToString() == b"\n\x02/t\x12\x02/s \x81\xa0\x01"
    nested = ContainerID(value="c", parent=ContainerID(value="p"))
    assert nested.SerializeToString() == b"\n\x01c\x12\x03\n\x01p"


def test_volume_parses_from_mesos_json() -> None:
    document = {
        "container_path": "/data",
        "mode": "RO",
        "source": {
            "type": "DOCKER_VOLUME",
            "docker_volume": {
                "driver": "d",
                "name": "n",
                "driver_options": {"parameter": [{"key": "iops", "value": "150"}]},
            },
        },
    }
    volume = json_format.ParseDict(document, Volume())
    assert volume.mode == Volume.RO
    assert volume.source.type == Volume.Source.DOCKER_VOLUME
    assert volume.source.docker_volume.driver == "d"
    assert volume.source.docker_volume.name == "n"
    assert volume.source.docker_volume.driver_options.parameter[0].key == "iops"
    assert json_format.MessageToDict(volume, preserving_proto_field_name=True) == document


def test_container_config_round_trips_through_json() -> None:
    config = ContainerConfig(
        directory="/sandbox",
        user="nobody",
        command_info=CommandInfo(value="true"),
        executor_info=ExecutorInfo(executor_id=ExecutorID(value="e")),
        container_info=ContainerInfo(
            type=ContainerInfo.MESOS,
            volumes=[Volume(container_path="tmp/foo", mode=Volume.RW)],
        ),
    )
    text = json_format.MessageToJson(config, preserving_proto_field_name=True)
    assert '"container_info"' in text
    assert '"command_info"' in text
    assert json_format.Parse(text, ContainerConfig()) == config


def test_package_reexports_every_message_by_its_mesos_name() -> None:
    names = {
        "CSIPluginContainerInfo",
        "CSIPluginEndpoint",
        "CSIPluginInfo",
        "CSIVolume",
        "CSIVolumes",
        "CommandInfo",
        "ContainerConfig",
        "ContainerID",
        "ContainerInfo",
        "ContainerLaunchInfo",
        "ContainerMountInfo",
        "ContainerState",
        "DockerVolume",
        "DockerVolumes",
        "ExecutorID",
        "ExecutorInfo",
        "Image",
        "Parameter",
        "Parameters",
        "Secret",
        "Volume",
        "VolumeState",
    }
    assert set(isolator.protos.__all__) == names
    for name in names:
        cls = getattr(isolator.protos, name)
        assert issubclass(cls, Message)
        assert cls.DESCRIPTOR.name == name


def test_committed_generated_code_matches_the_sources(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    written = generate_module.generate(tmp_path)
    protos_dir = Path(isolator.protos.__file__).parent
    produced = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.py*"))
    assert produced == sorted(generate_module.generated_files())
    assert len(written) == len(produced)
    for path in written:
        committed = protos_dir / path.name
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed} is stale; run: python -m isolator.protos.generate"
        )


def test_generated_files_cover_every_proto_source() -> None:
    protos_dir = Path(isolator.protos.__file__).parent
    sources = sorted(f"isolator/protos/{p.name}" for p in protos_dir.glob("*.proto"))
    assert sources == sorted(generate_module.PROTO_FILES)


def test_generation_without_grpc_tools_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "grpc_tools", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "grpc_tools.protoc", None)
    assert generate_module.main(["--out", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(
        "python -m isolator.protos.generate: error: protoc comes from grpcio-tools, which "
        "cannot be imported ("
    )
    assert err.endswith("); install the test extra: pip install -e '.[test]'\n")
    assert not any(tmp_path.rglob("*_pb2.py"))
