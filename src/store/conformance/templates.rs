//! Cases for uploaded files, template versions with their import jobs,
//! templates and the active version.

use chrono::Duration;
use uuid::Uuid;

use super::fixture::{self, fixture, import_job, user};
use crate::domain::{default_tags, JobStatus, JobType, Provisioner};
use crate::store::{Store, StoreError, Template, TemplateVersion};

/// Files are deduplicated per uploader only: the same bytes from another
/// uploader are a file of their own, so no one learns what others uploaded.
pub async fn files_are_deduplicated_per_uploader(store: &dyn Store) {
    let (alice, bob) = (user("alice", vec![]), user("bob", vec![]));
    store.insert_user(&alice).await.expect("alice");
    store.insert_user(&bob).await.expect("bob");
    let file = crate::store::File { hash: "ab".repeat(32), ..fixture::file(b"tar", alice.id) };
    let file_id = store.insert_file(&file).await.expect("file");
    assert_eq!(file_id, file.id, "a new file keeps its id");
    let dup = crate::store::File { id: Uuid::new_v4(), ..file.clone() };
    assert_eq!(
        store.insert_file(&dup).await.expect("dedupe"),
        file_id,
        "files are content-addressed"
    );
    let theirs = crate::store::File { id: Uuid::new_v4(), created_by: bob.id, ..file.clone() };
    let their_id = store.insert_file(&theirs).await.expect("another uploader");
    assert_ne!(their_id, file_id, "per uploader, so no one learns what others uploaded");
    assert_eq!(store.file(their_id).await.expect("theirs").created_by, bob.id);
    let mine = store.file(file_id).await.expect("mine");
    assert_eq!((mine.data.as_slice(), mine.mimetype.as_str()), (&b"tar"[..], "application/x-tar"));
    assert_eq!(
        store.file_info(file_id).await.expect("info"),
        ("ab".repeat(32), 3),
        "hash and size"
    );
    assert!(matches!(store.file(Uuid::new_v4()).await, Err(StoreError::NotFound)));
    assert!(matches!(store.file_info(Uuid::new_v4()).await, Err(StoreError::NotFound)));
}

/// A version is stored with its import job, pending in the queue; a
/// template attaches its first version; both are found by id and by name.
pub async fn template_version_comes_with_its_import_job(store: &dyn Store) {
    let f = fixture(store).await;
    let j = import_job(&f, default_tags(), Provisioner::Echo);
    let v = TemplateVersion {
        id: Uuid::new_v4(),
        template_id: None,
        name: "v2".into(),
        job_id: j.id,
        ..f.version.clone()
    };
    store.insert_template_version(&v, &j).await.expect("version");
    let got = store.template_version(v.id).await.expect("version");
    assert_eq!((got.template_id, got.job_id, got.name.as_str()), (None, j.id, "v2"));
    let job = store.job(j.id).await.expect("its job");
    assert_eq!(
        (job.job_type, job.status(), job.tags),
        (JobType::TemplateVersionImport, JobStatus::Pending, default_tags())
    );
    assert_eq!(job.input, j.input, "the job's input is kept");
    assert!(matches!(store.template_version(Uuid::new_v4()).await, Err(StoreError::NotFound)));

    // The fixture's template took its first version.
    assert_eq!(
        store.template_version(f.version.id).await.expect("v").template_id,
        Some(f.template.id)
    );
    let t = store.template(f.template.id).await.expect("template");
    assert_eq!((t.name.as_str(), t.active_version_id), ("t", f.version.id));
    let by_name = store.template_by_name(f.org.id, "T").await.expect("by name, any case");
    assert_eq!(by_name.id, f.template.id);
    assert!(matches!(store.template(Uuid::new_v4()).await, Err(StoreError::NotFound)));
    assert!(matches!(store.template_by_name(f.org.id, "u").await, Err(StoreError::NotFound)));
    let versions = store.template_versions_of_template(f.template.id).await.expect("versions");
    assert_eq!(versions.iter().map(|v| v.id).collect::<Vec<_>>(), [f.version.id]);
    let all = store.templates_of_organization(f.org.id).await.expect("templates");
    assert_eq!(all.iter().map(|t| t.id).collect::<Vec<_>>(), [f.template.id]);
}

/// A template name is taken once per organization; the refused template
/// leaves no trace and does not take its version.
pub async fn template_names_are_unique(store: &dyn Store) {
    let f = fixture(store).await;
    let j = import_job(&f, default_tags(), Provisioner::Echo);
    let v = TemplateVersion {
        id: Uuid::new_v4(),
        template_id: None,
        job_id: j.id,
        ..f.version.clone()
    };
    store.insert_template_version(&v, &j).await.expect("version");
    let twin = Template { id: Uuid::new_v4(), active_version_id: v.id, ..f.template.clone() };
    assert!(matches!(store.insert_template(&twin).await, Err(StoreError::Conflict(_))));
    assert!(matches!(store.template(twin.id).await, Err(StoreError::NotFound)));
    assert_eq!(store.template_version(v.id).await.expect("v").template_id, None);
    let other = Template { name: "other".into(), ..twin.clone() };
    store.insert_template(&other).await.expect("another name");
    let names: Vec<_> = store
        .templates_of_organization(f.org.id)
        .await
        .expect("templates")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["other", "t"], "by name");
}

/// A version backs one template: a second template from it is refused whole.
pub async fn a_version_backs_one_template(store: &dyn Store) {
    let f = fixture(store).await;
    let thief = Template { id: Uuid::new_v4(), name: "thief".into(), ..f.template.clone() };
    assert!(matches!(store.insert_template(&thief).await, Err(StoreError::Conflict(_))));
    assert!(matches!(store.template(thief.id).await, Err(StoreError::NotFound)));
    assert!(matches!(store.template_by_name(f.org.id, "thief").await, Err(StoreError::NotFound)));
    assert_eq!(
        store.template_version(f.version.id).await.expect("v").template_id,
        Some(f.template.id),
        "the version stays with its template"
    );
}

/// Promoting a version attaches it to the template and makes it active; a
/// version of another template is refused and the active one stays.
pub async fn active_version_moves_within_a_template(store: &dyn Store) {
    let f = fixture(store).await;
    // Versions list oldest first: each new one a second younger.
    let new_version = |name: &str, age: i64| {
        let j = import_job(&f, default_tags(), Provisioner::Echo);
        let v = TemplateVersion {
            id: Uuid::new_v4(),
            template_id: None,
            name: name.into(),
            created_at: f.version.created_at + Duration::seconds(age),
            job_id: j.id,
            ..f.version.clone()
        };
        (v, j)
    };
    let (v2, j2) = new_version("v2", 1);
    store.insert_template_version(&v2, &j2).await.expect("v2");
    store.set_active_version(f.template.id, v2.id).await.expect("promote");
    assert_eq!(store.template(f.template.id).await.expect("t").active_version_id, v2.id);
    assert_eq!(store.template_version(v2.id).await.expect("v2").template_id, Some(f.template.id));
    let versions = store.template_versions_of_template(f.template.id).await.expect("versions");
    assert_eq!(versions.iter().map(|v| v.id).collect::<Vec<_>>(), [f.version.id, v2.id]);
    store.set_active_version(f.template.id, f.version.id).await.expect("back to v1");
    assert_eq!(store.template(f.template.id).await.expect("t").active_version_id, f.version.id);

    // Another template's version stays there.
    let (v3, j3) = new_version("v3", 2);
    store.insert_template_version(&v3, &j3).await.expect("v3");
    let other = Template {
        id: Uuid::new_v4(),
        name: "other".into(),
        active_version_id: v3.id,
        ..f.template.clone()
    };
    store.insert_template(&other).await.expect("other");
    assert!(matches!(
        store.set_active_version(f.template.id, v3.id).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.template(f.template.id).await.expect("t").active_version_id,
        f.version.id,
        "the refused promotion changed nothing"
    );
    assert_eq!(store.template_version(v3.id).await.expect("v3").template_id, Some(other.id));
    assert!(matches!(
        store.set_active_version(Uuid::new_v4(), v2.id).await,
        Err(StoreError::NotFound)
    ));
}
