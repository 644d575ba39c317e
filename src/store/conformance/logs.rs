//! Cases for job logs: a batch stores only the lines above the highest
//! sequence number stored, byte for byte, and reads page by store id.

use uuid::Uuid;

use super::fixture::{fixture, line, new_workspace, queue_import, take};
use crate::domain::{default_tags, Provisioner};
use crate::store::{LogBatch, LogRange, Store};

/// Logs are de-duplicated by sequence number: a resent batch stores only
/// its new suffix, an old or empty one nothing, and each call reports the
/// lines it stored with their ids, exactly as a reader gets them.
pub async fn logs_store_only_sequences_above_the_highest(store: &dyn Store) {
    let f = fixture(store).await;
    let (_, _, j1) = new_workspace(store, &f, "dev").await;
    take(store, j1.id).await;
    let unlogged = store.append_logs(LogBatch { job_id: j1.id, lines: vec![] }).await;
    assert_eq!(unlogged.expect("no logs yet").up_to_seq, 0, "a job that never logged");
    let batch = LogBatch { job_id: j1.id, lines: vec![(1, line("a")), (2, line("b"))] };
    let first = store.append_logs(batch).await.expect("logs");
    assert_eq!(first.up_to_seq, 2);
    // Output is kept byte for byte, whatever terraform printed.
    let odd = "c \"quoted\" \\ back\ttab\r\nnew line é 😀 \u{0} nul [1,{}] ->> 0";
    let resend = LogBatch { job_id: j1.id, lines: vec![(2, line("b")), (3, line(odd))] };
    let second = store.append_logs(resend).await.expect("logs");
    assert_eq!(second.up_to_seq, 3);
    let logs = store.logs(j1.id, LogRange::default()).await.expect("logs");
    assert_eq!(logs.iter().map(|l| l.line.output.as_str()).collect::<Vec<_>>(), ["a", "b", odd]);
    // What each call reports as stored is exactly what a reader gets.
    assert_eq!([first.stored, second.stored].concat(), logs, "stored lines with their ids");
    let old = LogBatch { job_id: j1.id, lines: vec![(1, line("a"))] };
    let none = store.append_logs(old).await.expect("logs");
    assert_eq!((none.up_to_seq, none.stored.len()), (3, 0), "an old batch stores nothing");
    let empty = store.append_logs(LogBatch { job_id: j1.id, lines: vec![] }).await.expect("empty");
    assert_eq!((empty.up_to_seq, empty.stored.len()), (3, 0), "an empty batch reports the stored");
    // A batch out of order and with a repeated seq stores each line once, in
    // seq order.
    let mixed = vec![(5, line("e")), (4, line("d")), (5, line("e again"))];
    let mixed = store.append_logs(LogBatch { job_id: j1.id, lines: mixed }).await.expect("mixed");
    let got: Vec<_> = mixed.stored.iter().map(|l| (l.seq, l.line.output.as_str())).collect();
    assert_eq!((mixed.up_to_seq, got), (5, vec![(4, "d"), (5, "e")]));
    // A gap in the numbering is kept; lines below the highest never fill it.
    let gap = LogBatch { job_id: j1.id, lines: vec![(6, line("f")), (9, line("i"))] };
    assert_eq!(store.append_logs(gap).await.expect("gap").up_to_seq, 9);
    let fill = LogBatch { job_id: j1.id, lines: vec![(7, line("g")), (8, line("h"))] };
    let fill = store.append_logs(fill).await.expect("fill");
    assert_eq!((fill.up_to_seq, fill.stored.len()), (9, 0));
    let logs = store.logs(j1.id, LogRange::default()).await.expect("logs");
    let seqs: Vec<_> = logs.iter().map(|l| l.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6, 9]);
    assert!(logs.iter().all(|l| l.job_id == j1.id));
    assert_eq!(logs[0].line.stage, "s", "the stage is kept");
}

/// Reads give a job's lines in id order, strictly between `after` and
/// `before`, the first `limit` of them, and never another job's lines.
pub async fn logs_are_read_by_id_range(store: &dyn Store) {
    let f = fixture(store).await;
    let mine = queue_import(store, &f, default_tags(), Provisioner::Echo).await;
    let theirs = queue_import(store, &f, default_tags(), Provisioner::Echo).await;
    // Interleaved with another job's lines, so ids of one job have gaps.
    for seq in 1..=5 {
        for (job, name) in [(mine.id, "mine"), (theirs.id, "theirs")] {
            let batch =
                LogBatch { job_id: job, lines: vec![(seq, line(&format!("{name}-{seq}")))] };
            store.append_logs(batch).await.expect("logs");
        }
    }
    let logs = store.logs(mine.id, LogRange::default()).await.expect("logs");
    assert_eq!(logs.len(), 5);
    assert!(logs.iter().all(|l| l.line.output.starts_with("mine-")), "only this job's lines");
    assert!(logs.windows(2).all(|w| w[0].id < w[1].id && w[0].seq < w[1].seq));
    let range = |after: Option<usize>, before: Option<usize>, limit: Option<i64>| LogRange {
        after: after.map(|i| logs[i].id),
        before: before.map(|i| logs[i].id),
        limit,
    };
    let read = |r: LogRange| async move { store.logs(mine.id, r).await.expect("page") };
    assert_eq!(read(range(Some(0), Some(2), None)).await, logs[1..2], "strictly between");
    assert_eq!(read(range(None, None, Some(2))).await, logs[..2], "the first two");
    assert_eq!(read(range(Some(1), None, Some(2))).await, logs[2..4], "two after the second");
    assert_eq!(read(range(None, Some(3), None)).await, logs[..3], "before the fourth");
    assert!(read(range(Some(4), None, None)).await.is_empty(), "nothing after the last");
    assert!(read(range(Some(2), Some(3), None)).await.is_empty(), "nothing between neighbours");
    let outside = LogRange { after: Some(logs[4].id + 1000), ..LogRange::default() };
    assert!(read(outside).await.is_empty());
}

/// Lines of a job the store does not know are refused, and such a job has
/// no lines to read.
pub async fn logs_of_an_unknown_job_are_refused(store: &dyn Store) {
    fixture(store).await;
    let unknown = LogBatch { job_id: Uuid::new_v4(), lines: vec![(1, line("lost"))] };
    let job = unknown.job_id;
    assert!(store.append_logs(unknown).await.is_err(), "lines of an unknown job are refused");
    assert!(store.logs(job, LogRange::default()).await.expect("read").is_empty());
}
