"""x86 MSI address/data (SDM "Message Signalled Interrupts", arch/x86/include/asm/msi.h) and KVM's decode
and destination matching (arch/x86/kvm/irq.c kvm_msi_to_lapic_irq, lapic.c)."""
import pytest
from hypothesis import given, strategies as st

from irqlab import msi
from irqlab.kvm.msi import ApicIdentity, delivery_destinations, fast_destinations, fast_path_ok, match_destinations


def test_address_fields():
    m = msi.decode(0xFEE01000, 0x0041)
    assert (m.dest_id, m.dest_mode_logical, m.redirection_hint) == (1, False, False)
    m = msi.decode(0xFEE0100C, 0x0041)
    assert m.redirection_hint and m.dest_mode_logical and m.lowest_priority  # RH=1 is lowest priority in KVM
    assert msi.decode(0xFEE00FE0, 0x41).virt_destid_8_14 == 0x7F


def test_data_fields():
    m = msi.decode(0xFEE00000, 0x4031)
    assert (m.vector, m.delivery_mode, m.level_assert, m.trigger_level) == (0x31, 0, True, False)
    m = msi.decode(0xFEE00000, 0xC131)
    assert m.delivery_mode == 1 and m.delivery_mode_name == "Lowest Priority" and m.trigger_level and m.lowest_priority
    assert m.apic_dm == 0x100
    assert [msi.decode(0xFEE00000, d << 8).delivery_mode_name for d in range(8)] == \
        ["Fixed", "Lowest Priority", "SMI", "reserved", "NMI", "INIT", "reserved", "ExtINT"]


def test_fields_table_for_the_course():
    names = [f[0] for f in msi.decode(0xFEE02000, 0x4061).fields()]
    assert names[:2] == ["address[31:20]", "destination ID"] and "vector" in names and "trigger" in names


def test_x2apic_32bit_ids():
    m = msi.decode(0xFEE34000, 0x41, 0x00012300, x2apic_32bit_ids=True)
    assert m.dest_id == 0x00012334
    assert msi.decode(0xFEE34000, 0x41, 0x00012300).dest_id == 0x34  # without the capability: bits 19:12 only
    e = msi.encode(dest_id=0x12345, vector=0x50, x2apic_32bit_ids=True)
    assert e.address_hi == 0x12300 and e.dest_id == 0x12345
    with pytest.raises(ValueError, match="x2apic_32bit_ids"):
        msi.encode(dest_id=300, vector=0x50)


@pytest.mark.parametrize("args,exc", [
    ((0xFEE00000, 1 << 32), ValueError),   # not a u32
    (("0xFEE00000", 0x41), TypeError),
    ((0xFEE00000, 0x41, -1), ValueError),
    ((float(0xFEE00000), 0x41), TypeError),
])
def test_bad_input(args, exc):
    with pytest.raises(exc):
        msi.decode(*args)


def test_decode_reads_the_fields_only_like_kvm_msi_to_lapic_irq():
    """arch/x86/kvm/irq.c kvm_msi_to_lapic_irq (and x86_msi_msg_get_destid, arch/x86/kernel/apic/apic.c) read
    destid_0_7, dest_mode_logical, redirect_hint and the data fields: nothing checks base_address (0xFEE), so an
    address outside the interrupt window decodes by its fields, never a Python error."""
    m = msi.decode(0xFED01000, 0x4051)
    assert (m.base_address, m.dest_id, m.vector, m.delivery_mode) == (0xFED, 1, 0x51, 0)
    assert "never checks" in m.fields()[0][3]
    assert msi.decode(0x00001000, 0x51).dest_id == 1


@pytest.mark.parametrize("kw,exc", [
    (dict(dest_id=-1, vector=0x41), ValueError),            # was encoded as 0xFF: a broadcast
    (dict(dest_id=256, vector=0x41), ValueError),
    (dict(dest_id=1.0, vector=0x41), TypeError),
    (dict(dest_id=True, vector=0x41), TypeError),
    (dict(dest_id=1, vector=256), ValueError),
    (dict(dest_id=1, vector=-1), ValueError),
    (dict(dest_id=1, vector="0x41"), TypeError),
    (dict(dest_id=1, vector=0x41, delivery_mode=8), ValueError),
    (dict(dest_id=1, vector=0x41, delivery_mode=-1), ValueError),
    (dict(dest_id=1, vector=0x41, delivery_mode="sipi"), ValueError),
    (dict(dest_id=1, vector=0x41, dest_mode_logical="yes"), TypeError),
    (dict(dest_id=1, vector=0x41, trigger_level=2), TypeError),
    (dict(dest_id=-5, vector=0x41, x2apic_32bit_ids=True), ValueError),
    (dict(dest_id=2**32, vector=0x41, x2apic_32bit_ids=True), ValueError),
])
def test_encode_refuses_bad_fields(kw, exc):
    """A field that does not fit its bits is refused, not masked into another message (dest_id=-1 used to
    become 0xFF, the broadcast)."""
    with pytest.raises(exc):
        msi.encode(**kw)


@given(st.integers(0, 255), st.integers(0, 255), st.sampled_from([0, 1, 2, 4, 5, 7]), st.booleans(), st.booleans(),
       st.booleans(), st.booleans())
def test_encode_decode_round_trip(dest, vector, dm, logical, rh, level, assert_):
    e = msi.encode(dest_id=dest, vector=vector, delivery_mode=dm, dest_mode_logical=logical, redirection_hint=rh,
                   trigger_level=level, level_assert=assert_)
    d = msi.decode(e.address_lo, e.data, e.address_hi)
    assert (d.dest_id, d.vector, d.delivery_mode, d.dest_mode_logical, d.redirection_hint, d.trigger_level,
            d.level_assert) == (dest, vector, dm, logical, rh, level, assert_)


APICS = [ApicIdentity(i) for i in range(4)]  # physical IDs 0..3, flat logical LDR 1<<id


def test_physical_and_broadcast():
    assert match_destinations(msi.encode(dest_id=2, vector=0x41), APICS) == [2]
    bc = msi.encode(dest_id=0xFF, vector=0x41)
    assert match_destinations(bc, APICS) == [0, 1, 2, 3] and not fast_path_ok(bc, APICS)
    assert match_destinations(msi.encode(dest_id=9, vector=0x41), APICS) == []  # above the highest APIC ID


def test_logical_flat_cluster_and_x2apic():
    flat = msi.encode(dest_id=0b0110, vector=0x41, dest_mode_logical=True)
    assert match_destinations(flat, APICS) == [1, 2]
    cluster = [ApicIdentity(i, ldr=(0x10 | (1 << i)), dfr_flat=False) for i in range(3)]
    m = msi.encode(dest_id=0x13, vector=0x41, dest_mode_logical=True)
    assert match_destinations(m, cluster) == [0, 1]
    # an x2APIC's LDR is read-only: cluster ID >> 4 in bits 31:16, bit ID & 0xF (kvm_apic_calc_x2apic_ldr)
    x2 = [ApicIdentity(i, x2apic=True) for i in (16, 17, 18, 2)]
    m = msi.encode(dest_id=(1 << 16) | 0b101, vector=0x41, dest_mode_logical=True, x2apic_32bit_ids=True)
    assert match_destinations(m, x2) == [0, 2]
    assert match_destinations(msi.encode(dest_id=0x10002, vector=0x41, dest_mode_logical=True,
                                         x2apic_32bit_ids=True), [ApicIdentity(17, x2apic=True)]) == [0]
    with pytest.raises(ValueError, match="read-only"):
        ApicIdentity(17, ldr=0x10002, x2apic=True)


def test_lowest_priority_vector_hashing_and_rh():
    m = msi.encode(dest_id=0b1111, vector=0x43, delivery_mode="lowest", dest_mode_logical=True)
    assert match_destinations(m, APICS) == [0x43 % 4]
    assert match_destinations(m, APICS, vector_hashing=False) == [0]
    rh = msi.encode(dest_id=0b0110, vector=0x45, dest_mode_logical=True, redirection_hint=True)
    assert match_destinations(rh, APICS) == [[1, 2][0x45 % 2]]
    # physical broadcast + lowest priority is downgraded to Fixed: every vCPU
    assert match_destinations(msi.encode(dest_id=0xFF, vector=0x41, delivery_mode="lowest"), APICS) == [0, 1, 2, 3]


def test_logical_broadcast_is_a_broadcast():
    """kvm_apic_match_logical_addr starts with kvm_apic_broadcast: 0xFF reaches every APIC, even one with no
    logical ID, and the fast path declines it (kvm_apic_is_broadcast_dest) whatever the destination mode."""
    apics = APICS + [ApicIdentity(9)]  # APIC ID 9: LDR 0
    m = msi.encode(dest_id=0xFF, vector=0x41, dest_mode_logical=True)
    assert fast_destinations(m, apics) is None and match_destinations(m, apics) == [0, 1, 2, 3, 4]
    # logical broadcast + lowest priority is NOT downgraded (only the physical one is): one vCPU, hashed
    lo = msi.encode(dest_id=0xFF, vector=0x43, dest_mode_logical=True, delivery_mode="lowest")
    assert match_destinations(lo, apics) == [0x43 % 5]


def test_fast_path_physical_id_nobody_has_is_dropped_not_declined():
    m = msi.encode(dest_id=9, vector=0x41)
    assert fast_destinations(m, APICS) == [] and delivery_destinations(m, APICS) == ([], True)


def test_fast_path_lowest_priority_hashes_over_the_mask_bits():
    """kvm_apic_map_get_dest_lapic: kvm_vector_to_index over hweight16(mask), and a pick that lands on a slot
    with no APIC drops the interrupt; the slow path hashes over the vCPUs that match instead."""
    two = APICS[:2]  # logical IDs 0b01 and 0b10
    for vector in range(0x40, 0x46):
        m = msi.encode(dest_id=0b111, vector=vector, dest_mode_logical=True, delivery_mode="lowest")
        bit = [0, 1, 2][vector % 3]
        assert fast_destinations(m, two) == ([bit] if bit < 2 else []), hex(vector)
        assert match_destinations(m, two) == [[0, 1][vector % 2]]
    rh = msi.encode(dest_id=0b1010, vector=0x45, dest_mode_logical=True, redirection_hint=True)
    assert fast_destinations(rh, APICS) == [[1, 3][0x45 % 2]]
    assert fast_destinations(rh, APICS, vector_hashing=False) == [1]


def test_fast_path_declines_when_the_logical_map_is_disabled():
    """kvm_recalculate_logical_map disables the map for an LDR with several bits, a shared slot, or mixed
    modes: logical messages then take the slow path; physical ones keep the fast path."""
    shared = [ApicIdentity(0, ldr=0b1), ApicIdentity(1, ldr=0b1)]
    multi = [ApicIdentity(0, ldr=0b11), ApicIdentity(1, ldr=0b100)]
    mixed = [ApicIdentity(0, ldr=0b1), ApicIdentity(1, ldr=0x12, dfr_flat=False)]
    for apics in (shared, multi, mixed):
        m = msi.encode(dest_id=0b1, vector=0x41, dest_mode_logical=True)
        assert fast_destinations(m, apics) is None
        assert delivery_destinations(m, apics) == (match_destinations(m, apics), False)
        assert fast_destinations(msi.encode(dest_id=1, vector=0x41), apics) == [1]
    # no APIC has a logical ID yet: the map's logical mode is "software disabled", and nobody is hit
    nobody = [ApicIdentity(8), ApicIdentity(9)]
    assert fast_destinations(msi.encode(dest_id=0b1, vector=0x41, dest_mode_logical=True), nobody) == []


def test_kvm_mode_names():
    assert [msi.decode(0xFEE00000, d << 8).kvm_mode for d in range(8)] == \
        ["fixed", "lowest", "smi", "remrd", "nmi", "init", "startup", "extint"]
