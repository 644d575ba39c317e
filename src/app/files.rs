//! Template archives: upload (content-addressed by sha256 per uploader) and
//! download, which only the uploader, template admins and owners may do.

use chrono::Utc;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::access::{Action, Resource, Subject};
use super::{App, Error, Result};
use crate::store::File;

const TAR: &str = "application/x-tar";

impl App<'_> {
    /// Stores an archive uploaded with the given content type; returns the
    /// id of the stored file (the uploader's earlier file with the same
    /// bytes, if any).
    pub async fn upload_file(
        &self,
        who: Subject<'_>,
        content_type: &str,
        data: Vec<u8>,
    ) -> Result<Uuid> {
        let uploader = who
            .user_id()
            .ok_or_else(|| Error::internal("files are uploaded by users, not by the system"))?;
        who.may(Action::Create, Resource::File { uploader })?;
        let mimetype = content_type.split(';').next().unwrap_or("").trim();
        if mimetype != TAR && mimetype != "application/gzip" && mimetype != "application/x-gzip" {
            return Err(Error::bad_request(format!("Unsupported content type {mimetype:?}."))
                .detail(format!("upload a tar archive with Content-Type: {TAR}")));
        }
        if data.is_empty() {
            return Err(Error::bad_request("The uploaded file is empty."));
        }
        let file = File {
            id: Uuid::new_v4(),
            hash: hex::encode(Sha256::digest(&data)),
            mimetype: mimetype.to_owned(),
            data,
            created_by: uploader,
            created_at: Utc::now(),
        };
        Ok(self.store.insert_file(&file).await?)
    }

    /// An archive the subject may read.
    pub async fn file(&self, who: Subject<'_>, id: Uuid) -> Result<File> {
        let file = self.store.file(id).await?;
        who.may(Action::Read, Resource::File { uploader: file.created_by })?;
        Ok(file)
    }
}
