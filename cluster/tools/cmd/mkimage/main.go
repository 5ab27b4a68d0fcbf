// Command mkimage writes a container image (docker-archive tarball, what `ctr images import`
// reads) from directories or tar files, one layer each, with the given tags and config. It is
// how pgdrill's live cluster gets images without a registry. It never pulls or pushes anything.
//
// A directory may be an overlayfs upper directory: its whiteouts (0/0 character devices) and
// opaque directories become OCI whiteout entries. File times are written as a fixed instant, so
// the same content gives the same layer digest.
package main

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

// epoch is every entry's modification time.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// skipped are directories whose contents never belong in an image (the runtime mounts them).
var skipped = map[string]bool{"dev": true, "proc": true, "sys": true}

func main() {
	var tags, layers, env, labels list
	out := flag.String("o", "", "output tarball")
	entrypoint := flag.String("entrypoint", "", "entrypoint as a JSON array")
	cmd := flag.String("cmd", "", "command as a JSON array")
	user := flag.String("user", "", "user[:group]")
	workdir := flag.String("workdir", "", "working directory")
	flag.Var(&tags, "tag", "image reference (repeatable)")
	flag.Var(&layers, "layer", "directory or tar file, one layer each, bottom first (repeatable)")
	flag.Var(&env, "env", "KEY=VALUE (repeatable)")
	flag.Var(&labels, "label", "KEY=VALUE (repeatable)")
	flag.Parse()
	if *out == "" || len(tags) == 0 || len(layers) == 0 {
		log.Fatal("mkimage: -o, -tag and -layer are required")
	}

	cfg := v1.Config{Env: env, User: *user, WorkingDir: *workdir, Labels: map[string]string{}}
	for _, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		cfg.Labels[k] = v
	}
	for _, j := range []struct {
		raw string
		to  *[]string
	}{{*entrypoint, &cfg.Entrypoint}, {*cmd, &cfg.Cmd}} {
		if j.raw != "" {
			if err := json.Unmarshal([]byte(j.raw), j.to); err != nil {
				log.Fatalf("mkimage: %q is not a JSON array: %v", j.raw, err)
			}
		}
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: "amd64", OS: "linux", Created: v1.Time{Time: epoch}, Config: cfg,
	})
	check(err)

	tmp, err := os.MkdirTemp(filepath.Dir(*out), ".mkimage-")
	check(err)
	defer os.RemoveAll(tmp)
	for i, src := range layers {
		path := src
		if st, err := os.Stat(src); err != nil {
			log.Fatalf("mkimage: layer %s: %v", src, err)
		} else if st.IsDir() {
			path = filepath.Join(tmp, fmt.Sprintf("layer%d.tar", i))
			check(writeTar(src, path))
		}
		layer, err := tarball.LayerFromFile(path, tarball.WithCompressionLevel(gzip.BestSpeed))
		check(err)
		img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
			Created: v1.Time{Time: epoch}, CreatedBy: "mkimage " + filepath.Base(src),
		}})
		check(err)
	}

	refs := map[name.Reference]v1.Image{}
	for _, t := range tags {
		tag, err := name.NewTag(t)
		check(err)
		refs[tag] = img
	}
	part := *out + ".part"
	check(tarball.MultiRefWriteToFile(part, refs))
	check(os.Rename(part, *out))
	digest, err := img.Digest()
	check(err)
	fmt.Printf("%s %s\n", digest, strings.Join(tags, " "))
}

// writeTar writes the tree under root as a layer tarball.
func writeTar(root, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	links := map[uint64]string{} // inode → first path, for hard links
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		if parent := strings.SplitN(rel, "/", 2); len(parent) == 2 && skipped[parent[0]] {
			return nil
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		mode := info.Mode()
		// overlayfs whiteout: a 0/0 character device means "deleted in this layer".
		if mode&fs.ModeCharDevice != 0 && st.Rdev == 0 {
			return tw.WriteHeader(&tar.Header{
				Name: filepath.Join(filepath.Dir(rel), ".wh."+filepath.Base(rel)), Typeflag: tar.TypeReg,
				Mode: 0o644, ModTime: epoch, Format: tar.FormatPAX,
			})
		}
		if mode&(fs.ModeSocket|fs.ModeNamedPipe|fs.ModeDevice) != 0 {
			return nil
		}
		var target string
		if mode&fs.ModeSymlink != 0 {
			if target, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, target)
		if err != nil {
			return err
		}
		hdr.Name = rel
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
		hdr.Uname, hdr.Gname = "", ""
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = epoch, time.Time{}, time.Time{}
		hdr.Format = tar.FormatPAX
		if mode.IsRegular() && st.Nlink > 1 {
			if first, ok := links[st.Ino]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
				return tw.WriteHeader(hdr)
			}
			links[st.Ino] = rel
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.IsDir() {
			if v, err := getxattr(p, "trusted.overlay.opaque"); err == nil && v == "y" {
				return tw.WriteHeader(&tar.Header{
					Name: filepath.Join(rel, ".wh..wh..opq"), Typeflag: tar.TypeReg,
					Mode: 0o644, ModTime: epoch, Format: tar.FormatPAX,
				})
			}
			return nil
		}
		if !mode.IsRegular() {
			return nil
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func getxattr(path, attr string) (string, error) {
	buf := make([]byte, 16)
	n, err := unix.Lgetxattr(path, attr, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

func check(err error) {
	if err != nil {
		log.Fatalf("mkimage: %v", err)
	}
}
