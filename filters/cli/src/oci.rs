//! Istio Wasm OCI images, built without Docker, and their digests pinned into WasmPlugins.
//!
//! The image is Istio's *compat* variant, the one istio-agent's fetcher accepts besides Docker
//! images: an OCI image manifest whose last layer is a gzipped tar holding `plugin.wasm`. A
//! WasmPlugin's `spec.sha256` for an `oci://` url is the digest of that manifest, so every byte
//! here is deterministic: the same module gives the same digest on every machine.

use std::fs;
use std::io::Write;
use std::ops::Range;
use std::path::Path;

use flate2::{Compression, GzBuilder};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::filters::Filter;
use crate::yaml;

const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The entry Istio's fetcher looks for (by base name) in the last layer.
const PLUGIN_FILE: &str = "plugin.wasm";

const USAGE: &str = "usage:
  breakwater oci build --wasm FILE --name NAME --tag TAG --out DIR
  breakwater oci pin --layouts DIR FILE...";

pub fn run(args: &[String]) -> Result<(), String> {
    match args.split_first() {
        Some((command, rest)) if command == "build" => build_command(rest),
        Some((command, rest)) if command == "pin" => pin_command(rest),
        _ => Err(USAGE.to_string()),
    }
}

// --- build ---------------------------------------------------------------------------------------

fn build_command(args: &[String]) -> Result<(), String> {
    let values = options(args, &["--wasm", "--name", "--tag", "--out"])?;
    let [wasm_path, name, tag, out] = values.as_slice() else {
        return Err(USAGE.to_string());
    };
    let wasm = fs::read(wasm_path).map_err(|e| format!("{wasm_path}: {e}"))?;
    let image = Image::build(&wasm, name, tag).map_err(|e| format!("{wasm_path}: {e}"))?;
    image.write_layout(Path::new(out))?;
    println!("{}", image.manifest_digest);
    Ok(())
}

/// `--flag value` pairs, each of `names` exactly once, returned in the order of `names`.
fn options<'a>(args: &'a [String], names: &[&str]) -> Result<Vec<&'a str>, String> {
    let mut pairs = Vec::new();
    for chunk in args.chunks(2) {
        match chunk {
            [flag, value] if names.contains(&flag.as_str()) => {
                pairs.push((flag.as_str(), value.as_str()))
            }
            [flag] if names.contains(&flag.as_str()) => {
                return Err(format!("oci build: {flag} needs a value\n{USAGE}"))
            }
            [arg, ..] => return Err(format!("oci build: unexpected argument {arg:?}\n{USAGE}")),
            [] => {}
        }
    }
    names
        .iter()
        .map(|name| {
            let mut found = pairs.iter().filter(|(flag, _)| flag == name);
            match (found.next(), found.next()) {
                (Some((_, value)), None) => Ok(*value),
                (None, _) => Err(format!("oci build: {name} is missing\n{USAGE}")),
                _ => Err(format!("oci build: {name} is given more than once")),
            }
        })
        .collect()
}

/// The blobs of one image (layer, config, manifest) and the layout's index.json.
#[derive(Debug)]
struct Image {
    /// `sha256:<hex>` of `manifest`: what `spec.sha256` pins (without the prefix).
    manifest_digest: String,
    layer: Vec<u8>,
    config: Vec<u8>,
    manifest: Vec<u8>,
    index: Vec<u8>,
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": sha256(bytes), "size": bytes.len() })
}

/// Compact JSON: `json!` keeps the key order as written (serde_json's `preserve_order`), so the
/// bytes, and the digests, are fixed.
fn to_bytes(value: &Value) -> Result<Vec<u8>, String> {
    serde_json::to_vec(value).map_err(|e| format!("serialising JSON: {e}"))
}

impl Image {
    fn build(wasm: &[u8], name: &str, tag: &str) -> Result<Image, String> {
        if !wasm.starts_with(b"\0asm") {
            return Err("not a WebAssembly module (it does not start with \\0asm)".into());
        }
        if name.is_empty() || name.contains('/') {
            return Err(format!(
                "--name {name:?}: give the image's last path segment, e.g. circuit-breaker"
            ));
        }
        // The OCI distribution spec's tag grammar; skopeo and registries refuse anything else.
        let tag_ok = tag.len() <= 128
            && tag.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphanumeric() || c == '_' || (i > 0 && matches!(c, '.' | '-'))
            });
        if tag.is_empty() || !tag_ok {
            return Err(format!(
                "--tag {tag:?} is not a valid image tag ([A-Za-z0-9_][A-Za-z0-9._-]{{0,127}})"
            ));
        }
        let tar = layer_tar(wasm)?;
        let layer = gzip(&tar)?;
        let config = to_bytes(&json!({
            "architecture": "wasm",
            "os": "wasip1",
            "rootfs": { "type": "layers", "diff_ids": [sha256(&tar)] },
        }))?;
        let manifest = to_bytes(&json!({
            "schemaVersion": 2,
            // go-containerregistry (istio-agent) picks the extraction by this field.
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": descriptor(CONFIG_MEDIA_TYPE, &config),
            "layers": [descriptor(LAYER_MEDIA_TYPE, &layer)],
            "annotations": {
                "module.wasm.image/variant": "compat",
                "org.opencontainers.image.title": name,
                "org.opencontainers.image.version": tag,
            },
        }))?;
        let mut manifest_descriptor = descriptor(MANIFEST_MEDIA_TYPE, &manifest);
        if let Some(fields) = manifest_descriptor.as_object_mut() {
            // `skopeo copy oci:DIR:TAG` finds the image by this annotation.
            fields.insert("annotations".into(), json!({ REF_NAME: tag }));
        }
        let index = to_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [manifest_descriptor],
        }))?;
        Ok(Image {
            manifest_digest: sha256(&manifest),
            layer,
            config,
            manifest,
            index,
        })
    }

    /// Writes the OCI image layout into `dir`, replacing a previous layout there.
    fn write_layout(&self, dir: &Path) -> Result<(), String> {
        let shown = dir.display();
        if dir.exists() {
            // Only ever replace a layout (or nothing): a mistyped --out must not wipe a directory.
            let empty = fs::read_dir(dir)
                .map_err(|e| format!("{shown}: {e}"))?
                .next()
                .is_none();
            if !empty && !dir.join("oci-layout").is_file() {
                return Err(format!(
                    "{shown}: not empty and not an OCI image layout, refusing to replace it"
                ));
            }
            fs::remove_dir_all(dir)
                .map_err(|e| format!("{shown}: cannot remove the previous layout: {e}"))?;
        }
        let blobs = dir.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(|e| format!("{}: {e}", blobs.display()))?;
        let write = |path: &Path, bytes: &[u8]| {
            fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
        };
        for blob in [&self.layer, &self.config, &self.manifest] {
            let digest = sha256(blob);
            write(&blobs.join(digest.trim_start_matches("sha256:")), blob)?;
        }
        write(
            &dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        write(&dir.join("index.json"), &self.index)
    }
}

/// A tar of the single entry `plugin.wasm`, with no trace of the build machine: ustar header,
/// mode 0644, uid/gid 0, no user or group name, mtime 0.
fn layer_tar(wasm: &[u8]) -> Result<Vec<u8>, String> {
    let error = |e: std::io::Error| format!("writing the layer tar: {e}");
    let mut header = tar::Header::new_ustar();
    header.set_path(PLUGIN_FILE).map_err(error)?;
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(wasm.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_username("").map_err(error)?;
    header.set_groupname("").map_err(error)?;
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, wasm).map_err(error)?;
    builder.into_inner().map_err(error)
}

/// gzip with a fixed header (mtime 0, no file name, OS "unknown") and a fixed level; the
/// compressor is pure Rust at the version in Cargo.lock, so its output is fixed too.
fn gzip(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let error = |e: std::io::Error| format!("compressing the layer: {e}");
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::best());
    encoder.write_all(bytes).map_err(error)?;
    encoder.finish().map_err(error)
}

// --- pin -----------------------------------------------------------------------------------------

fn pin_command(args: &[String]) -> Result<(), String> {
    let [flag, dir, files @ ..] = args else {
        return Err(USAGE.to_string());
    };
    if flag != "--layouts" || files.is_empty() {
        return Err(USAGE.to_string());
    }
    let lookup = |filter: Filter| read_layout(&Path::new(dir).join(filter.name()));
    // Everything is checked before anything is written: a failure leaves every file as it was.
    let mut updates = Vec::new();
    for file in files {
        let text = fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
        let (pinned, report) = pin_text(&text, &lookup).map_err(|e| format!("{file}: {e}"))?;
        updates.push((file, text != pinned, pinned, report));
    }
    for (file, changed, pinned, report) in updates {
        if changed {
            fs::write(file, pinned).map_err(|e| format!("{file}: {e}"))?;
        }
        for line in report {
            println!("{file}: {line}");
        }
    }
    Ok(())
}

/// The tag and manifest digest (`sha256:<hex>`) of the image in an OCI layout.
#[derive(Debug)]
struct LayoutRef {
    tag: String,
    digest: String,
}

fn read_layout(dir: &Path) -> Result<LayoutRef, String> {
    let path = dir.join("index.json");
    let shown = path.display();
    let bytes =
        fs::read(&path).map_err(|e| format!("{shown}: {e} (run `make oci-layouts` first)"))?;
    let index: Value = serde_json::from_slice(&bytes).map_err(|e| format!("{shown}: {e}"))?;
    let manifests = index
        .get("manifests")
        .and_then(Value::as_array)
        .map(Vec::as_slice);
    let Some([manifest]) = manifests else {
        return Err(format!(
            "{shown}: expected exactly one manifest (written by `breakwater oci build`)"
        ));
    };
    let field = |pointer: &str| {
        manifest
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match (
        field("/annotations/org.opencontainers.image.ref.name"),
        field("/digest"),
    ) {
        (Some(tag), Some(digest)) => Ok(LayoutRef { tag, digest }),
        _ => Err(format!(
            "{shown}: the manifest has no digest or no {REF_NAME} annotation"
        )),
    }
}

/// The image reference in a WasmPlugin url: `oci://host/ns/circuit-breaker:0.1.0@sha256:...`
/// gives `("circuit-breaker", Some("0.1.0"), Some("sha256:..."))`. None for http(s) and file
/// urls, whose `sha256` is the module's own digest, not an image's.
fn image_ref(url: &str) -> Option<(&str, Option<&str>, Option<&str>)> {
    // Istio reads a url without a scheme as oci://.
    let reference = match url.split_once("://") {
        Some(("oci", rest)) => rest,
        Some(_) => return None,
        None => url,
    };
    let (path, digest) = match reference.split_once('@') {
        Some((path, digest)) => (path, Some(digest)),
        None => (reference, None),
    };
    let last = path.rsplit('/').next().unwrap_or(path);
    Some(match last.split_once(':') {
        Some((name, tag)) => (name, Some(tag), digest),
        None => (last, None, digest),
    })
}

/// Sets `spec.sha256` of every WasmPlugin of ours in a (multi-document) YAML text to its
/// image's manifest digest, editing only that line. Returns the new text and one report line per
/// WasmPlugin.
fn pin_text(
    text: &str,
    lookup: &dyn Fn(Filter) -> Result<LayoutRef, String>,
) -> Result<(String, Vec<String>), String> {
    let mut out = String::with_capacity(text.len());
    let mut report = Vec::new();
    for (number, range) in document_ranges(text).into_iter().enumerate() {
        let doc = text.get(range).unwrap_or_default();
        let context = |e: String| format!("document {}: {e}", number + 1);
        let pinned = pin_document(doc, lookup).map_err(context)?;
        match pinned {
            Some((new_doc, line)) => {
                out.push_str(&new_doc);
                report.push(format!("document {}: {line}", number + 1));
            }
            None => out.push_str(doc),
        }
    }
    Ok((out, report))
}

/// Byte ranges of the documents of a YAML stream, split before each `---` marker line, so the
/// ranges cover the whole text and every comment stays with its document.
fn document_ranges(text: &str) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let is_marker = line
            .strip_prefix("---")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace));
        if is_marker && offset > start {
            ranges.push(start..offset);
            start = offset;
        }
        offset += line.len();
    }
    ranges.push(start..text.len());
    ranges
}

/// Pins one document; None when it is not a WasmPlugin for one of our images.
fn pin_document(
    doc: &str,
    lookup: &dyn Fn(Filter) -> Result<LayoutRef, String>,
) -> Result<Option<(String, String)>, String> {
    let documents = yaml::documents(doc)?;
    let value = match documents.as_slice() {
        [] => return Ok(None),
        [(_, value)] => value,
        _ => return Err("cannot find the document boundaries (`---` lines)".into()),
    };
    let text_at = |pointer: &str| value.pointer(pointer).and_then(Value::as_str);
    let url = text_at("/spec/url");
    let (Some("WasmPlugin"), Some(url)) = (text_at("/kind"), url) else {
        return Ok(None);
    };
    let Some((image, tag, url_digest)) = image_ref(url) else {
        return Ok(None);
    };
    let Some(filter) = Filter::from_name(image) else {
        return Ok(None);
    };
    let name = text_at("/metadata/name").unwrap_or("(unnamed)");
    let layout = lookup(filter)?;
    let tag = tag.unwrap_or("latest");
    if tag != layout.tag {
        return Err(format!(
            "WasmPlugin {name}: url {url} has tag {tag} but the {} layout was built with tag {}; make them agree",
            filter.name(),
            layout.tag
        ));
    }
    if url_digest.is_some_and(|digest| digest != layout.digest) {
        return Err(format!(
            "WasmPlugin {name}: url {url} names another digest than the layout's {}",
            layout.digest
        ));
    }
    let hex = layout.digest.trim_start_matches("sha256:");
    let what = format!("WasmPlugin {name} ({}:{tag})", filter.name());
    if text_at("/spec/sha256") == Some(hex) {
        return Ok(Some((
            doc.to_string(),
            format!("{what} already pinned to sha256:{hex}"),
        )));
    }
    let Some(value_range) = sha256_value_range(doc) else {
        return Err(format!(
            "WasmPlugin {name} has no `sha256:` line under `spec:`; add one (e.g. `sha256: \"\"`)"
        ));
    };
    let old = doc.get(value_range.clone()).unwrap_or_default();
    let quote = ['"', '\''].into_iter().find(|q| old.starts_with(*q));
    let mut new = quote.map_or_else(|| hex.to_string(), |q| format!("{q}{hex}{q}"));
    // `sha256:` with no value: keep the value apart from the key and from a comment.
    if doc
        .get(..value_range.start)
        .is_some_and(|before| before.ends_with(':'))
    {
        new.insert(0, ' ');
    }
    if doc
        .get(value_range.end..)
        .is_some_and(|after| after.starts_with('#'))
    {
        new.push(' ');
    }
    let mut pinned = doc.to_string();
    pinned.replace_range(value_range, &new);
    // The edit is textual: check it changed spec.sha256 and nothing else.
    let mut expected = value.clone();
    if let Some(spec) = expected.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("sha256".into(), Value::String(hex.to_string()));
    }
    let reparsed = yaml::documents(&pinned)?;
    if !matches!(reparsed.as_slice(), [(_, value)] if *value == expected) {
        return Err(format!(
            "WasmPlugin {name}: cannot rewrite its `sha256:` line safely; set it to {hex} by hand"
        ));
    }
    Ok(Some((pinned, format!("{what} pinned to sha256:{hex}"))))
}

/// The byte range of the value of the `sha256:` key directly under the top-level `spec:` (block
/// style), without any trailing comment; empty when the key has no value.
fn sha256_value_range(doc: &str) -> Option<Range<usize>> {
    let mut offset = 0;
    let mut in_spec = false;
    let mut child_indent = None;
    for line in doc.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let content = line.trim_end();
        let trimmed = content.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = content.len() - trimmed.len();
        if indent == 0 {
            // A top-level key: `spec:` opens the block, any other closes it.
            in_spec = trimmed.strip_prefix("spec:").is_some_and(|rest| {
                rest.trim_start().is_empty() || rest.trim_start().starts_with('#')
            });
            continue;
        }
        if !in_spec || *child_indent.get_or_insert(indent) != indent {
            continue;
        }
        let Some(rest) = trimmed.strip_prefix("sha256:") else {
            continue;
        };
        if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
            continue;
        }
        let value_start = start + indent + "sha256:".len() + (rest.len() - rest.trim_start().len());
        let value = rest.trim_start();
        // A comment starts at ` #` (or right away); a digest never contains one.
        let value = value
            .find(" #")
            .map_or(value, |i| value.get(..i).unwrap_or(value).trim_end());
        let value_len = if value.starts_with('#') {
            0
        } else {
            value.len()
        };
        return Some(value_start..value_start + value_len);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;
    use std::path::PathBuf;

    const WASM: &[u8] = b"\0asm\x01\0\0\0 pretend this is a module";

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("breakwater-oci-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn json_file(path: &Path) -> Value {
        serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn same_module_same_digest_other_module_other_digest() {
        let a = Image::build(WASM, "fallback", "0.1.0").unwrap();
        let b = Image::build(WASM, "fallback", "0.1.0").unwrap();
        assert_eq!(a.manifest_digest, b.manifest_digest);
        assert_eq!((a.layer, a.config, a.index), (b.layer, b.config, b.index));
        let other = Image::build(b"\0asm\x01\0\0\0 another", "fallback", "0.1.0").unwrap();
        assert_ne!(other.manifest_digest, a.manifest_digest);
    }

    #[test]
    fn refuses_what_is_not_wasm_and_bad_tags() {
        assert!(Image::build(b"#!/bin/sh", "fallback", "0.1.0")
            .unwrap_err()
            .contains("\\0asm"));
        assert!(Image::build(WASM, "fallback", "-bad").is_err());
        assert!(Image::build(WASM, "fallback", "a:b").is_err());
        assert!(Image::build(WASM, "ns/fallback", "0.1.0").is_err());
    }

    #[test]
    fn layout_is_an_istio_compat_image() {
        let dir = temp_dir("layout");
        let image = Image::build(WASM, "circuit-breaker", "0.1.0").unwrap();
        image.write_layout(&dir).unwrap();
        // Written twice: the second replaces the first.
        image.write_layout(&dir).unwrap();

        assert_eq!(
            fs::read_to_string(dir.join("oci-layout")).unwrap(),
            r#"{"imageLayoutVersion":"1.0.0"}"#
        );
        let blob = |digest: &str| {
            fs::read(
                dir.join("blobs/sha256")
                    .join(digest.trim_start_matches("sha256:")),
            )
            .unwrap()
        };
        let mut names: Vec<_> = fs::read_dir(dir.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names.len(), 3);
        for name in names {
            let name = name.into_string().unwrap();
            assert_eq!(sha256(&blob(&name)), format!("sha256:{name}"));
        }

        let index = json_file(&dir.join("index.json"));
        assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
        let entry = &index["manifests"][0];
        assert_eq!(entry["digest"], image.manifest_digest);
        assert_eq!(entry["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(entry["annotations"][REF_NAME], "0.1.0");
        assert_eq!(read_layout(&dir).unwrap().digest, image.manifest_digest);

        let manifest: Value = serde_json::from_slice(&blob(&image.manifest_digest)).unwrap();
        assert_eq!(manifest["schemaVersion"], 2);
        assert_eq!(manifest["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(
            manifest["annotations"]["module.wasm.image/variant"],
            "compat"
        );
        assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0]["mediaType"], LAYER_MEDIA_TYPE);

        // What istio-agent does: gunzip the last layer, find plugin.wasm by base name.
        let layer = blob(layers[0]["digest"].as_str().unwrap());
        assert_eq!(layers[0]["size"], layer.len());
        let mut tar = Vec::new();
        GzDecoder::new(layer.as_slice())
            .read_to_end(&mut tar)
            .unwrap();
        let config: Value =
            serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
        assert_eq!(config["architecture"], "wasm");
        assert_eq!(config["rootfs"]["diff_ids"][0], sha256(&tar));
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut entries = archive.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str(), Some(PLUGIN_FILE));
        assert_eq!(
            (
                entry.header().mode().unwrap(),
                entry.header().mtime().unwrap()
            ),
            (0o644, 0)
        );
        let mut module = Vec::new();
        entry.read_to_end(&mut module).unwrap();
        assert_eq!(module, WASM);
        drop(entry);
        assert!(entries.next().is_none());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_to_replace_a_directory_that_is_not_a_layout() {
        let dir = temp_dir("not-a-layout");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("precious.txt"), "keep me").unwrap();
        let image = Image::build(WASM, "fallback", "0.1.0").unwrap();
        assert!(image.write_layout(&dir).unwrap_err().contains("refusing"));
        assert!(dir.join("precious.txt").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn options_in_any_order_each_once() {
        let args: Vec<String> = ["--tag", "1", "--wasm", "m.wasm"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            options(&args, &["--wasm", "--tag"]).unwrap(),
            ["m.wasm", "1"]
        );
        assert!(options(&args, &["--wasm", "--tag", "--out"])
            .unwrap_err()
            .contains("--out is missing"));
        assert!(options(&args[..3], &["--wasm", "--tag"])
            .unwrap_err()
            .contains("needs a value"));
        assert!(options(&args, &["--wasm"])
            .unwrap_err()
            .contains("unexpected"));
    }

    #[test]
    fn image_refs() {
        assert_eq!(
            image_ref("oci://ghcr.io/acme/breakwater/fallback:0.1.0"),
            Some(("fallback", Some("0.1.0"), None))
        );
        assert_eq!(
            image_ref("localhost:5000/circuit-breaker@sha256:ab"),
            Some(("circuit-breaker", None, Some("sha256:ab")))
        );
        assert_eq!(image_ref("https://example.com/fallback.wasm"), None);
    }

    const DIGEST: &str = "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn layouts(filter: Filter) -> Result<LayoutRef, String> {
        match filter {
            Filter::LogEnrichment => Err("no layout for log-enrichment".into()),
            _ => Ok(LayoutRef {
                tag: "0.1.0".into(),
                digest: DIGEST.into(),
            }),
        }
    }

    const MANIFESTS: &str = "\
# The breakwater filters.
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: circuit-breaker   # sha256: not this one
spec:
  selector:
    matchLabels:
      sha256: not-this-either
  url: oci://registry.example/breakwater/circuit-breaker:0.1.0
  sha256: \"\"   # pinned by `make oci`
  pluginConfig:
    breakers: []
---
# Not ours: left alone.
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: other
spec:
  url: oci://registry.example/other:1.0
  sha256: 1234
---
kind: ConfigMap
metadata:
  name: fallback
data:
  sha256: x
---
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: fallback
spec:
  url: oci://registry.example/breakwater/fallback:0.1.0
  sha256: 0000
";

    #[test]
    fn pin_rewrites_only_the_sha256_lines_of_our_wasmplugins() {
        let (pinned, report) = pin_text(MANIFESTS, &layouts).unwrap();
        let hex = DIGEST.trim_start_matches("sha256:");
        let expected = MANIFESTS
            .replace(
                "  sha256: \"\"   # pinned",
                &format!("  sha256: \"{hex}\"   # pinned"),
            )
            .replace("  sha256: 0000", &format!("  sha256: {hex}"));
        assert_eq!(pinned, expected);
        assert_eq!(
            report,
            [
                format!("document 1: WasmPlugin circuit-breaker (circuit-breaker:0.1.0) pinned to {DIGEST}"),
                format!("document 4: WasmPlugin fallback (fallback:0.1.0) pinned to {DIGEST}"),
            ]
        );
        // A second run changes nothing.
        let (again, report) = pin_text(&pinned, &layouts).unwrap();
        assert_eq!(again, pinned);
        assert!(report
            .iter()
            .all(|line| line.ends_with(&format!("already pinned to {DIGEST}"))));
    }

    #[test]
    fn pin_fills_an_empty_sha256_value() {
        let hex = DIGEST.trim_start_matches("sha256:");
        for (line, pinned) in [
            ("  sha256:\n", format!("  sha256: {hex}\n")),
            (
                "  sha256:   # pinned by make oci\n",
                format!("  sha256:   {hex} # pinned by make oci\n"),
            ),
            (
                "  sha256: '' # pinned\r\n",
                format!("  sha256: '{hex}' # pinned\r\n"),
            ),
        ] {
            let text = format!("kind: WasmPlugin\nspec:\n  url: r/fallback:0.1.0\n{line}");
            let expected = format!("kind: WasmPlugin\nspec:\n  url: r/fallback:0.1.0\n{pinned}");
            assert_eq!(pin_text(&text, &layouts).unwrap().0, expected);
        }
    }

    #[test]
    fn pin_errors_name_the_document_and_the_fix() {
        let no_line =
            "---\nkind: WasmPlugin\nmetadata:\n  name: fb\nspec:\n  url: oci://r/fallback:0.1.0\n";
        let error = pin_text(&format!("kind: Namespace\n{no_line}"), &layouts).unwrap_err();
        assert!(
            error.starts_with("document 2: WasmPlugin fb has no `sha256:` line"),
            "{error}"
        );

        let other_tag = "kind: WasmPlugin\nspec:\n  url: oci://r/fallback:0.2.0\n  sha256: x\n";
        assert!(pin_text(other_tag, &layouts)
            .unwrap_err()
            .contains("tag 0.2.0"));
        let no_tag = "kind: WasmPlugin\nspec:\n  url: oci://r/fallback\n  sha256: x\n";
        assert!(pin_text(no_tag, &layouts)
            .unwrap_err()
            .contains("tag latest"));
        let missing = "kind: WasmPlugin\nspec:\n  url: oci://r/log-enrichment:0.1.0\n  sha256: x\n";
        assert!(pin_text(missing, &layouts)
            .unwrap_err()
            .contains("no layout for log-enrichment"));
    }
}
