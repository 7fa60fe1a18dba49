//! SPEC §15 X2, the function set of `evloop::fs` (tokio::fs's): round trips of text and
//! binary, copy / rename / links / permissions, errors that name their paths, and a
//! 10 000-entry `read_dir` read in batches (counted in pool round trips, through the
//! loop's `remote_schedules`: one per completed job).

mod common;

use common::fs::TempDir;

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;

use evloop::fs;
use evloop::{Error, LoopHandle};
use futures_util::StreamExt;

#[test]
fn text_and_binary_round_trips() {
    let tmp = TempDir::new("roundtrip");
    common::run_guarded(async move {
        let text = tmp.0.join("text.txt");
        fs::write(&text, "héllo\nwörld\n").await?;
        assert_eq!(fs::read_to_string(&text).await?, "héllo\nwörld\n");
        let binary = tmp.0.join("data.bin");
        let bytes: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
        fs::write(&binary, &bytes).await?;
        assert!(fs::read(&binary).await? == bytes);
        assert_eq!(fs::metadata(&binary).await?.len(), 1 << 20);
        // Not UTF-8: read_to_string refuses, naming the file.
        let e = fs::read_to_string(&binary).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData);
        assert!(e.to_string().contains("data.bin"), "{e}");
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn copy_rename_links_and_permissions() {
    let tmp = TempDir::new("ops");
    common::run_guarded(async move {
        let a = tmp.0.join("a");
        fs::write(&a, b"contents").await?;
        assert_eq!(fs::copy(&a, tmp.0.join("b")).await?, 8);
        fs::rename(tmp.0.join("b"), tmp.0.join("c")).await?;
        assert!(!fs::try_exists(tmp.0.join("b")).await?);
        assert_eq!(fs::read(tmp.0.join("c")).await?, b"contents");
        fs::hard_link(&a, tmp.0.join("hard")).await?;
        fs::symlink(&a, tmp.0.join("soft")).await?;
        assert_eq!(fs::read_link(tmp.0.join("soft")).await?, a);
        assert!(fs::symlink_metadata(tmp.0.join("soft")).await?.is_symlink());
        assert_eq!(
            fs::canonicalize(tmp.0.join("soft")).await?,
            fs::canonicalize(&a).await?
        );
        fs::set_permissions(&a, std::fs::Permissions::from_mode(0o600)).await?;
        assert_eq!(fs::metadata(&a).await?.permissions().mode() & 0o777, 0o600);
        let nested = tmp.0.join("x/y/z");
        fs::create_dir_all(&nested).await?;
        fs::create_dir(nested.join("w")).await?;
        fs::remove_dir(nested.join("w")).await?;
        fs::remove_dir_all(tmp.0.join("x")).await?;
        assert!(!fs::try_exists(tmp.0.join("x")).await?);
        fs::remove_file(&a).await?;
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn errors_name_their_paths_and_keep_their_kind() {
    let tmp = TempDir::new("errors");
    common::run_guarded(async move {
        let missing = tmp.0.join("missing");
        let e = fs::read(&missing).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(
            e.to_string(),
            format!(
                "read {}: No such file or directory (os error 2)",
                missing.display()
            )
        );
        let detail = e
            .get_ref()
            .unwrap()
            .downcast_ref::<fs::PathError>()
            .unwrap();
        assert_eq!((detail.op(), detail.path()), ("read", missing.as_path()));
        assert_eq!(detail.raw_os_error(), Some(libc::ENOENT));
        let to = tmp.0.join("elsewhere");
        let e = fs::rename(&missing, &to).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(
            e.to_string().starts_with(&format!(
                "rename {} -> {}: ",
                missing.display(),
                to.display()
            )),
            "{e}"
        );
        let e = fs::create_dir(&tmp.0).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        let e = fs::read_dir(&missing).await.unwrap_err();
        assert!(e.to_string().starts_with("read_dir "), "{e}");
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn read_dir_of_10_000_entries_in_batches() {
    const N: usize = 10_000;
    let tmp = TempDir::new("readdir");
    for i in 0..N {
        std::fs::write(tmp.0.join(format!("f{i:05}")), b"").unwrap();
    }
    std::fs::create_dir(tmp.0.join("sub")).unwrap();
    common::run_guarded(async move {
        let before = LoopHandle::current().stats().remote_schedules;
        let mut names = BTreeSet::new();
        let mut dirs = 0;
        let mut listing = fs::read_dir(&tmp.0).await?;
        while let Some(entry) = listing.next_entry().await? {
            if entry.file_type()?.is_dir() {
                dirs += 1;
            }
            names.insert(entry.file_name().into_string().unwrap());
        }
        let round_trips = LoopHandle::current().stats().remote_schedules - before;
        assert_eq!(names.len(), N + 1);
        assert!(names.contains("f00000") && names.contains("f09999") && names.contains("sub"));
        assert_eq!(dirs, 1);
        // 32 entries a batch: about 314 jobs, far from one per entry.
        assert!(
            round_trips < (N / 10) as u64,
            "{round_trips} pool round trips"
        );
        // The stream form sees the same entries.
        let count = fs::read_dir(&tmp.0).await?.count().await;
        assert_eq!(count, N + 1);
        Ok::<_, Error>(())
    })
    .unwrap();
}
