use super::*;
use arrow::array::{Float64Array, StringArray, UInt32Array};

#[test]
fn a_set_turning_dense_keeps_every_member_once() {
    let mut group = Group::default();
    let mut expected = RoaringBitmap::new();
    let mut x = 0x6e69_u32;
    for i in 0..200_000u32 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        // Mostly a dense range, with a sparse tail far from it.
        let member = (x >> 8) % 50_000 + if i % 7 == 0 { 1_000_000 } else { 0 };
        group.push(member);
        expected.insert(member);
    }
    assert!(group.dense, "the set went over to direct inserts");
    assert_eq!(group.finish(), expected);
}

#[test]
fn sets_union_across_partial_states_and_count_distinct_persons() {
    let mut a = Members(SetGroups::default());
    let persons: ArrayRef = Arc::new(UInt32Array::from(vec![1, 2, 2, 3, 9]));
    a.update_batch(&[persons], &[0, 0, 1, 1, 1], None, 2)
        .expect("update");
    let mut b = Members(SetGroups::default());
    let more: ArrayRef = Arc::new(UInt32Array::from(vec![1, 4]));
    b.update_batch(&[more], &[0, 0], None, 1).expect("update");
    let state = b.state(EmitTo::All).expect("state");
    a.merge_batch(&state, &[1], 2).expect("merge");
    let out = a.evaluate(EmitTo::All).expect("evaluate");
    let out = out.as_binary::<i32>();
    let g0 = decode_set(out.value(0)).expect("set");
    let g1 = decode_set(out.value(1)).expect("set");
    assert_eq!(g0.iter().collect::<Vec<_>>(), [1, 2]);
    assert_eq!(g1.iter().collect::<Vec<_>>(), [1, 2, 3, 4, 9]);
}

#[test]
fn facility_codes_are_counted_distinct() {
    let mut a = Members(SetGroups::default());
    let codes: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "a", "c"]));
    a.update_batch(&[codes], &[0, 0, 0, 0], None, 1)
        .expect("update");
    let out = a.evaluate(EmitTo::All).expect("evaluate");
    assert_eq!(
        decode_set(out.as_binary::<i32>().value(0))
            .expect("set")
            .len(),
        3
    );
}

#[test]
fn contributions_sum_per_person_and_keep_the_largest_of_each_value() {
    let mut a = ByPerson(ContributionGroups::new(2));
    let persons: ArrayRef = Arc::new(UInt32Array::from(vec![1, 1, 2, 3, 4]));
    let first: ArrayRef = Arc::new(Float64Array::from(vec![10.0, 5.0, -3.0, 1.0, 0.0]));
    let second: ArrayRef = Arc::new(Float64Array::from(vec![
        Some(1.0),
        Some(1.0),
        None,
        Some(0.0),
        Some(9.0),
    ]));
    a.update_batch(&[persons, first, second], &[0, 0, 0, 0, 0], None, 1)
        .expect("update");
    let state = a.state(EmitTo::All).expect("state");
    let mut b = ByPerson(ContributionGroups::new(2));
    b.merge_batch(&state, &[0], 1).expect("merge");
    let out = b.evaluate(EmitTo::All).expect("evaluate");
    let c = Contributions::decode(out.as_binary::<i32>().value(0)).expect("this form");
    assert_eq!(c.len(), 2, "a section per value");
    assert_eq!(c[0].total, 19.0);
    assert_eq!(
        c[0].persons.iter().collect::<Vec<_>>(),
        [1, 2, 3],
        "person 4 contributed nothing"
    );
    assert_eq!(c[0].top, [15.0, 3.0, 1.0]);
    assert_eq!(c[1].total, 11.0);
    assert_eq!(c[1].persons.iter().collect::<Vec<_>>(), [1, 4]);
    assert_eq!(c[1].top, [9.0, 2.0]);
}

/// Rows in a few ascending runs of persons (a store clustered by fiscal year and person),
/// split over two partitions whose persons interleave, give what the same rows in any order
/// give; the runs keep no map, the shuffled rows fall back to it.
#[test]
fn contributions_and_sets_in_person_order_equal_any_order() {
    let mut x = 0x6e69_u64;
    let mut rows: Vec<(usize, u32, f64)> = (0..20_000)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let person = (x >> 40) as u32 % 3_000;
            ((x >> 20) as usize % 3, person, ((x >> 8) % 100) as f64)
        })
        .collect();
    let feed = |rows: &[(usize, u32, f64)]| {
        let mut sets = Members(SetGroups::default());
        let mut sums = ByPerson(ContributionGroups::new(1));
        let persons: ArrayRef = Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.1)));
        let values: ArrayRef = Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2)));
        let groups: Vec<usize> = rows.iter().map(|r| r.0).collect();
        sets.update_batch(std::slice::from_ref(&persons), &groups, None, 3)
            .expect("update");
        sums.update_batch(&[persons, values], &groups, None, 3)
            .expect("update");
        (sets, sums)
    };
    let evaluate = |halves: [&[(usize, u32, f64)]; 2]| {
        let (mut sets_a, mut sums_a) = feed(halves[0]);
        let (mut sets_b, mut sums_b) = feed(halves[1]);
        let in_order = sums_a.0.groups.iter().all(|g| g.map.is_none());
        let mut sets = Members(SetGroups::default());
        let mut sums = ByPerson(ContributionGroups::new(1));
        for state in [sets_b.state(EmitTo::All), sets_a.state(EmitTo::All)] {
            sets.merge_batch(&state.expect("state"), &[0, 1, 2], 3)
                .expect("merge");
        }
        for state in [sums_b.state(EmitTo::All), sums_a.state(EmitTo::All)] {
            sums.merge_batch(&state.expect("state"), &[0, 1, 2], 3)
                .expect("merge");
        }
        let merged_in_order = sums.0.groups.iter().all(|g| g.map.is_none());
        let sets = sets.evaluate(EmitTo::All).expect("evaluate");
        let sums = sums.evaluate(EmitTo::All).expect("evaluate");
        let cells: Vec<(Vec<u32>, Contributions)> = (0..3)
            .map(|g| {
                let set = decode_set(sets.as_binary::<i32>().value(g)).expect("set");
                let c = Contributions::decode(sums.as_binary::<i32>().value(g));
                (set.iter().collect(), c.expect("this form").remove(0))
            })
            .collect();
        (cells, in_order, merged_in_order)
    };
    let (shuffled, in_order, _) = evaluate([&rows[..10_000], &rows[10_000..]]);
    assert!(!in_order, "shuffled rows went over to the map");
    // Two partitions, each in three "fiscal years" of ascending persons, their persons
    // interleaving.
    let mut years: Vec<(usize, (usize, u32, f64))> = rows.drain(..).enumerate().collect();
    years.sort_by_key(|(i, r)| (i % 3, r.1));
    let (odd, even): (Vec<_>, Vec<_>) = years
        .into_iter()
        .map(|(_, r)| r)
        .partition(|r| r.1 % 2 == 1);
    let (sorted, in_order, merged_in_order) = evaluate([&odd, &even]);
    assert!(in_order && merged_in_order, "person order kept no map");
    assert_eq!(sorted, shuffled);
    assert!(
        sorted
            .iter()
            .all(|(set, c)| set.len() > 900 && c.persons.len() > 900)
    );
}

/// A cell of another form is told apart; a cell cut short loses its last section (which a
/// check then finds missing and masks).
#[test]
fn contributions_of_another_form_or_cut_short_are_not_misread() {
    let mut a = ByPerson(ContributionGroups::new(2));
    let persons: ArrayRef = Arc::new(UInt32Array::from(vec![1, 2]));
    let values: ArrayRef = Arc::new(Float64Array::from(vec![3.0, 4.0]));
    a.update_batch(&[persons, values.clone(), values], &[0, 0], None, 1)
        .expect("update");
    let out = a.evaluate(EmitTo::All).expect("evaluate");
    let bytes = out.as_binary::<i32>().value(0);
    assert_eq!(Contributions::decode(bytes).map(|c| c.len()), Some(2));
    let mut earlier_form = bytes.to_vec();
    earlier_form[0] = 0;
    assert_eq!(Contributions::decode(&earlier_form), None);
    assert_eq!(Contributions::decode(&[]), None);
    let cut = &bytes[..bytes.len() - 1];
    assert_eq!(Contributions::decode(cut).map(|c| c.len()), Some(1));
}

#[test]
fn few_keeps_up_to_its_cap_across_partial_states() {
    let mut a = Members(FirstMembersGroups::new(3));
    let codes: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "a", "c", "d", "x"]));
    a.update_batch(&[codes], &[0, 0, 0, 0, 0, 1], None, 2)
        .expect("update");
    let state = a.state(EmitTo::All).expect("state");
    let mut b = Members(FirstMembersGroups::new(3));
    b.merge_batch(&state, &[0, 0], 1).expect("merge");
    let out = b.evaluate(EmitTo::All).expect("evaluate");
    let n = decode_set(out.as_binary::<i32>().value(0))
        .expect("set")
        .len();
    assert_eq!(n, 3, "a, b, c (then full) and x: capped at 3");
    let state = a.convert_to_state(&[Arc::new(UInt32Array::from(vec![Some(7), None]))], None);
    let state = state.expect("state");
    let one = decode_set(state[0].as_binary::<i32>().value(0)).expect("set");
    assert_eq!(one.iter().collect::<Vec<_>>(), [7]);
    assert!(
        decode_set(state[0].as_binary::<i32>().value(1))
            .expect("set")
            .is_empty()
    );
}

/// Written directly, a set has the bytes roaring writes for it, and reads back the same,
/// across array and bitmap containers (4,096 members and one more), several containers
/// and none; runs merged give each member once.
#[test]
fn sets_written_from_runs_are_roaring_s_own_bytes() {
    let cases: Vec<Vec<u32>> = vec![
        vec![],
        vec![7],
        (0..4096).map(|i| i * 3).collect(),
        (0..4097).map(|i| i * 3).collect(),
        (0..70_000).map(|i| i * 5 + (i % 7)).collect(),
        vec![1, 65_535, 65_536, 1 << 20, u32::MAX >> 1],
    ];
    for members in cases {
        let set: RoaringBitmap = members.iter().copied().collect();
        let written = serialize_sorted(&members);
        assert_eq!(written, encode_set(&set), "{} members", members.len());
        assert_eq!(decode_set(&written).expect("reads back"), set);
    }
    let mut group = Group::default();
    for m in [5, 9, 9, 12, 1, 9, 30, 2, 3, 12, 40] {
        group.push(m);
    }
    let expected: RoaringBitmap = [1, 2, 3, 5, 9, 12, 30, 40].into_iter().collect();
    assert_eq!(decode_set(&group.encode()).expect("set"), expected);
    let mut many_runs = Group::default();
    for run in 0..20u32 {
        for m in (0..50).map(|i| i * 20 + run) {
            many_runs.push(m);
        }
    }
    let all: RoaringBitmap = (0..20u32)
        .flat_map(|run| (0..50).map(move |i| i * 20 + run))
        .collect();
    assert_eq!(decode_set(&many_runs.encode()).expect("set"), all);
    // Runs longer than a list holds go into the bitmap as they grow, members kept once.
    let mut long = Group::default();
    let first: Vec<u32> = (0..200_000).map(|i| i * 3).collect();
    let second: Vec<u32> = (0..150_000).map(|i| i * 4 + 1).collect();
    for &m in first.iter().chain(&second) {
        long.push(m);
        long.push(m);
    }
    let listed = long.runs.iter().map(Vec::len).sum::<usize>() + long.newest.len;
    assert!(listed <= 2 * RUN_LIST, "{listed} members in lists");
    let all: RoaringBitmap = first.iter().chain(&second).copied().collect();
    assert_eq!(decode_set(&long.encode()).expect("set"), all);
}

/// Batches are skipped while every group is full; a group that arrives later, or one left
/// after the full ones were emitted, still takes its members.
#[test]
fn full_groups_skip_rows_and_new_groups_still_fill() {
    let marks = |m: &[u32]| -> ArrayRef { Arc::new(UInt32Array::from(m.to_vec())) };
    let members = |out: &ArrayRef, group: usize| {
        decode_set(out.as_binary::<i32>().value(group))
            .expect("set")
            .iter()
            .collect::<Vec<_>>()
    };
    let mut a = Members(FirstMembersGroups::new(2));
    a.update_batch(&[marks(&[1, 2, 3, 4])], &[0, 0, 1, 1], None, 2)
        .expect("fills both");
    a.update_batch(&[marks(&[5, 6])], &[0, 1], None, 2)
        .expect("skipped");
    a.update_batch(&[marks(&[7, 8, 9])], &[0, 2, 2], None, 3)
        .expect("a new group");
    let first = a.evaluate(EmitTo::First(1)).expect("first");
    assert_eq!(members(&first, 0), [1, 2]);
    a.update_batch(&[marks(&[10])], &[1], None, 2)
        .expect("group 2 is now group 1, and full");
    a.update_batch(&[marks(&[11, 12])], &[1, 2], None, 3)
        .expect("a new group after an emit");
    let rest = a.evaluate(EmitTo::All).expect("rest");
    assert_eq!(members(&rest, 0), [3, 4]);
    assert_eq!(members(&rest, 1), [8, 9]);
    assert_eq!(members(&rest, 2), [12]);
}

/// A group of an aggregation by the pseudonym hands on its one person; nulls (no person)
/// stay null; a second person in a group fails the query instead of hiding one of them.
#[test]
fn the_person_of_a_group_is_carried_and_two_persons_fail() {
    let mut a = Members(FirstGroups::person());
    let persons: ArrayRef = Arc::new(UInt32Array::from(vec![Some(7), Some(7), None, Some(9)]));
    a.update_batch(&[persons], &[0, 0, 1, 2], None, 3)
        .expect("update");
    let state = a.state(EmitTo::All).expect("state");
    let mut b = Members(FirstGroups::person());
    b.merge_batch(&state, &[0, 1, 2], 3).expect("merge");
    let more: ArrayRef = Arc::new(UInt32Array::from(vec![7, 9]));
    let filter = BooleanArray::from(vec![Some(true), None]);
    b.update_batch(std::slice::from_ref(&more), &[0, 1], Some(&filter), 3)
        .expect("filtered rows are not taken");
    let out = b.evaluate(EmitTo::All).expect("evaluate");
    let out = out.as_primitive::<UInt32Type>();
    assert_eq!(out.iter().collect::<Vec<_>>(), [Some(7), None, Some(9)]);
    let rows = a.convert_to_state(&[more], Some(&filter)).expect("rows");
    let rows = rows[0].as_primitive::<UInt32Type>();
    assert_eq!(rows.iter().collect::<Vec<_>>(), [Some(7), None]);

    let mut c = Members(FirstGroups::person());
    let two: ArrayRef = Arc::new(UInt32Array::from(vec![1, 2]));
    let err = c.update_batch(&[two], &[0, 0], None, 1).unwrap_err();
    assert!(err.to_string().contains("share a pseudonym"), "{err}");
}

/// A group's one facility is its first; others do not fail it (a person visits several).
#[test]
fn a_facility_of_a_group_is_its_first() {
    let mut a = Members(FirstGroups::default());
    let marks: ArrayRef = Arc::new(UInt32Array::from(vec![None, Some(5), Some(6), Some(8)]));
    a.update_batch(&[marks], &[0, 0, 0, 1], None, 3)
        .expect("several facilities in a group");
    let out = a.evaluate(EmitTo::All).expect("evaluate");
    let out = out.as_primitive::<UInt32Type>();
    assert_eq!(out.iter().collect::<Vec<_>>(), [Some(5), Some(8), None]);
}

#[test]
fn facility_marks_are_counted_as_they_are_and_codes_by_their_marks() {
    let mut a = Members(FirstMembersGroups::new(10));
    let codes: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "a"]));
    a.update_batch(&[codes], &[0, 0, 0], None, 1)
        .expect("codes");
    let marks: ArrayRef = Arc::new(UInt32Array::from(vec![
        facility_mark("a"),
        facility_mark("c"),
    ]));
    a.update_batch(&[marks], &[0, 0], None, 1).expect("marks");
    let out = a.evaluate(EmitTo::All).expect("evaluate");
    let members = decode_set(out.as_binary::<i32>().value(0)).expect("set");
    assert_eq!(members.len(), 3, "a (as code and as mark), b and c");
}

#[test]
fn records_of_nobody_identified_dominate_but_are_no_persons() {
    let mut a = ByPerson(ContributionGroups::new(1));
    let persons: ArrayRef = Arc::new(UInt32Array::from(vec![Some(1), None, Some(2), None]));
    let values: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 500.0, 2.0, 300.0]));
    a.update_batch(&[persons, values], &[0, 0, 0, 0], None, 1)
        .expect("update");
    let out = a.evaluate(EmitTo::All).expect("evaluate");
    let c = &Contributions::decode(out.as_binary::<i32>().value(0)).expect("this form")[0];
    assert_eq!(c.total, 803.0, "their values are in the total");
    assert_eq!(
        c.top,
        [500.0, 300.0, 2.0, 1.0],
        "each record its own contributor"
    );
    assert_eq!(
        c.persons.iter().collect::<Vec<_>>(),
        [1, 2],
        "but nobody they could be counted as"
    );
}

/// A cell's evaluated set and sections.
fn evaluate_cell<T: Contributing>(
    cells: &mut ByPerson<T>,
    group: usize,
) -> (RoaringBitmap, Vec<Contributions>) {
    let out = cells.evaluate(EmitTo::All).expect("evaluate");
    let out = out.as_struct();
    let persons = decode_set(out.column(0).as_binary::<i32>().value(group)).expect("set");
    let sections =
        Contributions::decode(out.column(1).as_binary::<i32>().value(group)).expect("this form");
    (persons, sections)
}

fn cell_rows<T: Contributing>(
    cells: &mut ByPerson<T>,
    persons: Vec<Option<u32>>,
    values: &[Vec<f64>],
) {
    let rows = persons.len();
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(UInt32Array::from(persons))];
    arrays.extend(
        values
            .iter()
            .map(|v| Arc::new(Float64Array::from(v.clone())) as ArrayRef),
    );
    cells
        .update_batch(&arrays, &vec![0; rows], None, 1)
        .expect("update");
}

/// A ceiled cell keeps its persons and each value's total of |value| (rows of nobody
/// included) across partial states, and hands on its ceilings as the bounds of its largest
/// contributions, with nothing kept per person. A state cut short is refused.
#[test]
fn a_ceiled_cell_sums_its_values_and_is_bounded_by_its_ceilings() {
    let ceilings = vec![vec![90.0, 80.0], vec![7.0]];
    let mut states = Vec::new();
    for partition in 0..2u32 {
        let mut cells = ByPerson(BoundedCellGroups::new(ceilings.clone()));
        cell_rows(
            &mut cells,
            vec![Some(partition), Some(partition), None, Some(5 + partition)],
            &[vec![-3.0, 4.0, 10.0, 1.0], vec![1.0, 1.0, 0.0, 2.0]],
        );
        states.push(cells.state(EmitTo::All).expect("state"));
    }
    let mut merged = ByPerson(BoundedCellGroups::new(ceilings.clone()));
    for state in &states {
        merged.merge_batch(state, &[0], 1).expect("merge");
    }
    let (persons, sections) = evaluate_cell(&mut merged, 0);
    assert_eq!(persons, [0, 1, 5, 6].into_iter().collect::<RoaringBitmap>());
    let totals: Vec<f64> = sections.iter().map(|s| s.total).collect();
    assert_eq!(totals, [36.0, 8.0]);
    for (section, ceiling) in sections.iter().zip(&ceilings) {
        assert_eq!(section.form, Form::Bounds);
        assert_eq!(&section.top, ceiling);
        assert_eq!(section.persons, persons);
    }
    let whole = states[0][0].as_binary::<i32>().value(0);
    let cut: ArrayRef = Arc::new(arrow::array::BinaryArray::from(vec![
        &whole[..whole.len() - 3],
    ]));
    let mut refused = ByPerson(BoundedCellGroups::new(ceilings));
    assert!(refused.merge_batch(&[cut], &[0], 1).is_err());
}

/// Two runs that overlap and repeat each other's members merge into one ascending run with
/// each member once, however they interleave.
#[test]
fn merged_runs_keep_each_member_once_in_order() {
    let a: Vec<u32> = (0..3_000).filter(|m| m % 3 != 1).collect();
    let b: Vec<u32> = (1_000..5_000).filter(|m| m % 5 != 0).collect();
    let expected: Vec<u32> = a
        .iter()
        .chain(&b)
        .copied()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(merge_ascending(&a, &b), expected);
    assert_eq!(merge_ascending(&b, &a), expected);
    assert_eq!(merge_ascending(&[], &b), b);
    assert_eq!(merge_ascending(&a, &[]), a);
}

/// Within one part the largest sums are exact, in whatever order persons' sums rise and fall
/// (an entry is told apart by the least of those kept so far, which moves as they do).
#[test]
fn a_cell_of_one_part_keeps_exactly_its_largest_sums() {
    let mut rows = Vec::new();
    let mut x = 0x6e69_u32;
    for p in 0..500u32 {
        for _ in 0..1 + p % 3 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            // Sums rising with the person, with noise: the kept ones change early and late.
            rows.push((p, f64::from(p / 4 + (x >> 20) % 97)));
        }
    }
    let mut exact: HashMap<u32, f64> = HashMap::default();
    for &(p, v) in &rows {
        *exact.entry(p).or_default() += v;
    }
    let mut cells = ByPerson(CellGroups::new(1));
    cell_rows(
        &mut cells,
        rows.iter().map(|r| Some(r.0)).collect(),
        &[rows.iter().map(|r| r.1).collect()],
    );
    let (_, sections) = evaluate_cell(&mut cells, 0);
    let mut sums: Vec<f64> = exact.values().copied().collect();
    sums.sort_by(|a, b| b.total_cmp(a));
    assert_eq!(sections[0].form, Form::Exact, "one part");
    assert_eq!(sections[0].top, sums[..TOP_CONTRIBUTIONS]);
    assert_eq!(sections[0].total, sums.iter().sum::<f64>());
}

/// Two partitions, each handing the cell its persons in two ascending runs (fiscal years)
/// that share persons: the set is exact, and each bound is at least the sum it bounds.
#[test]
fn a_cell_keeps_its_persons_and_bounds_its_largest_contributions() {
    let mut exact: HashMap<u32, f64> = HashMap::default();
    let mut states = Vec::new();
    for partition in 0..2u32 {
        let mut cells = ByPerson(CellGroups::new(1));
        for year in 0..2u32 {
            let persons: Vec<u32> = (0..60).map(|i| i * 2 + partition).collect();
            // A person's rows come together, two to four of them.
            let rows: Vec<(u32, f64)> = persons
                .iter()
                .flat_map(|&p| {
                    (0..2 + (p + year) % 3)
                        .map(move |r| (p, f64::from((p * 7 + r * 13 + year) % 50)))
                })
                .collect();
            for &(p, v) in &rows {
                *exact.entry(p).or_default() += v;
            }
            cell_rows(
                &mut cells,
                rows.iter().map(|r| Some(r.0)).collect(),
                &[rows.iter().map(|r| -r.1).collect()],
            );
        }
        states.push(cells.state(EmitTo::All).expect("state"));
    }
    let mut merged = ByPerson(CellGroups::new(1));
    for state in &states {
        merged.merge_batch(state, &[0], 1).expect("merge");
    }
    let (persons, sections) = evaluate_cell(&mut merged, 0);
    let c = &sections[0];
    assert_eq!(persons, exact.keys().copied().collect::<RoaringBitmap>());
    assert_eq!(c.form, Form::Bounds, "four parts");
    assert_eq!(c.persons, persons, "nobody's sum is zero");
    assert_eq!(c.total, exact.values().sum::<f64>(), "|value| summed");
    let mut sums: Vec<f64> = exact.values().copied().collect();
    sums.sort_by(|a, b| b.total_cmp(a));
    for n in 1..=TOP_CONTRIBUTIONS {
        let bound: f64 = c.top.iter().take(n).sum();
        let largest: f64 = sums.iter().take(n).sum();
        assert!(bound >= largest, "n = {n}: {bound} bounds {largest}");
    }
    assert!(
        c.top[0] < sums[0] * 4.0 + 1.0,
        "a bound is a sum over four parts, not over everyone"
    );
}

/// In one ascending run every person is one entry: the cell is exact, down to who adds
/// nothing. Over several parts, a zero in one may not be a zero in all, so who contributes
/// is not known and the check must run again exactly.
#[test]
fn a_cell_of_one_run_is_exact_and_zeros_over_parts_are_unknown() {
    let mut one = ByPerson(CellGroups::new(2));
    cell_rows(
        &mut one,
        vec![Some(1), Some(1), Some(2), None, Some(3), Some(3)],
        &[
            vec![5.0, 4.0, 0.0, 700.0, 3.0, 3.0],
            vec![1.0, 1.0, 8.0, 0.0, 0.0, 0.0],
        ],
    );
    let (persons, sections) = evaluate_cell(&mut one, 0);
    assert_eq!(persons.iter().collect::<Vec<_>>(), [1, 2, 3]);
    let [first, second] = &sections[..] else {
        panic!("a section per value: {sections:?}");
    };
    assert_eq!(first.form, Form::Exact);
    assert_eq!(
        first.top,
        [700.0, 9.0, 6.0],
        "nobody's record is its own contributor"
    );
    assert_eq!(first.total, 715.0);
    assert_eq!(
        first.persons.iter().collect::<Vec<_>>(),
        [1, 3],
        "2 adds nothing"
    );
    assert_eq!(second.top, [8.0, 2.0]);
    assert_eq!(second.persons.iter().collect::<Vec<_>>(), [1, 2]);

    let mut parts = ByPerson(CellGroups::new(1));
    cell_rows(&mut parts, vec![Some(4), Some(5)], &[vec![0.0, 1.0]]);
    cell_rows(&mut parts, vec![Some(4)], &[vec![2.0]]);
    let (_, sections) = evaluate_cell(&mut parts, 0);
    assert_eq!(
        sections[0].form,
        Form::PersonsUnknown,
        "4 adds 2 in its second run"
    );
}

/// Where DataFusion skips partial aggregation, each row is handed on as a state of its
/// own: rows of ascending persons still make one run, exact, not a part each.
#[test]
fn rows_handed_on_alone_join_the_run() {
    let cells = ByPerson(CellGroups::new(1));
    let persons: ArrayRef = Arc::new(UInt32Array::from(vec![
        Some(1),
        Some(1),
        None,
        Some(2),
        Some(3),
    ]));
    let values: ArrayRef = Arc::new(Float64Array::from(vec![2.0, 3.0, 9.0, 0.0, 4.0]));
    let states = cells
        .convert_to_state(&[persons, values], None)
        .expect("a state a row");
    let mut merged = ByPerson(CellGroups::new(1));
    merged.merge_batch(&states, &[0; 5], 1).expect("merge");
    let (persons, sections) = evaluate_cell(&mut merged, 0);
    assert_eq!(persons.iter().collect::<Vec<_>>(), [1, 2, 3]);
    let c = &sections[0];
    assert_eq!(c.form, Form::Exact, "one run");
    assert_eq!(
        c.top,
        [9.0, 5.0, 4.0],
        "1's rows summed; nobody's record its own"
    );
    assert_eq!(
        c.persons.iter().collect::<Vec<_>>(),
        [1, 3],
        "2 adds nothing"
    );
}

/// A state cut short fails the query rather than pass a smaller cell.
#[test]
fn a_cell_state_cut_short_is_refused() {
    let mut cells = ByPerson(CellGroups::new(1));
    cell_rows(&mut cells, vec![Some(1), Some(2)], &[vec![1.0, 2.0]]);
    let state = cells.state(EmitTo::All).expect("state");
    let bytes = state[0].as_binary::<i32>().value(0);
    for cut in [3, bytes.len() - 1] {
        let short: ArrayRef = Arc::new(arrow::array::BinaryArray::from(vec![&bytes[..cut]]));
        let mut merged = ByPerson(CellGroups::new(1));
        assert!(
            merged.merge_batch(&[short], &[0], 1).is_err(),
            "cut at {cut}"
        );
    }
}
